# Embeds the migrations sql/NNN_name.sql into the binaries (lib/CMakeLists.txt runs it at build
# time), so that no install path is needed at run time:
#
#   cmake -DSQL_DIR=<dir> -DOUT_C=<file.c> -DOUT_H=<file.h> -P embed_sql.cmake
#
# OUT_C defines aif_migrations[] ({version, name, sql}, in version order) and aif_n_migrations
# (declared in lib/aif_db.h); OUT_H defines AIF_SCHEMA_VERSION, the highest version. Versions
# must be 1, 2, 3, ... without gaps. The repeatable files sql/repeatable/NN_name.sql become
# aif_repeatables[] ({0, name, sql}, in name order) and aif_n_repeatables, and
# AIF_SCHEMA_REPEATABLE_SHA256 the SHA-256 of their names and texts: what the database must
# record for aifd to use it.

foreach(var SQL_DIR OUT_C OUT_H)
  if(NOT ${var})
    message(FATAL_ERROR "embed_sql: ${var} is not set")
  endif()
endforeach()

file(GLOB files RELATIVE "${SQL_DIR}" "${SQL_DIR}/*.sql")
list(SORT files)
if(NOT files)
  message(FATAL_ERROR "embed_sql: no migrations in ${SQL_DIR}")
endif()

set(out "/* Generated from sql/NNN_name.sql by lib/embed_sql.cmake: do not edit. */\n")
string(APPEND out "#include \"aif_db.h\"\n\nconst struct aif_migration aif_migrations[] = {\n")
set(expected 1)
foreach(f IN LISTS files)
  if(NOT f MATCHES "^([0-9][0-9][0-9])_([a-z0-9_]+)\\.sql$")
    message(FATAL_ERROR "embed_sql: ${SQL_DIR}/${f}: a migration is named NNN_name.sql (lower case)")
  endif()
  math(EXPR version "${CMAKE_MATCH_1}")
  if(NOT version EQUAL expected)
    message(FATAL_ERROR "embed_sql: ${SQL_DIR}/${f}: expected migration number ${expected}")
  endif()
  string(REGEX REPLACE "\\.sql$" "" name "${f}")
  file(READ "${SQL_DIR}/${f}" text)
  # A C string literal: escape \ " and ? (trigraphs), one source line per SQL line.
  string(REPLACE "\r" "" text "${text}")
  string(REPLACE "\\" "\\\\" text "${text}")
  string(REPLACE "\"" "\\\"" text "${text}")
  string(REPLACE "?" "\\?" text "${text}")
  string(REPLACE "\n" "\\n\"\n\t\"" text "${text}")
  string(APPEND out "\t{${version}, \"${name}\",\n\t\"${text}\"},\n")
  math(EXPR expected "${expected} + 1")
endforeach()
math(EXPR last "${expected} - 1")
string(APPEND out "};\n\nconst size_t aif_n_migrations = sizeof(aif_migrations) / sizeof(aif_migrations[0]);\n")

file(GLOB repeatables RELATIVE "${SQL_DIR}/repeatable" "${SQL_DIR}/repeatable/*.sql")
list(SORT repeatables)
set(all "")
string(APPEND out "\nconst struct aif_migration aif_repeatables[] = {\n")
foreach(f IN LISTS repeatables)
  if(NOT f MATCHES "^[0-9][0-9]_[a-z0-9_]+\\.sql$")
    message(FATAL_ERROR "embed_sql: ${SQL_DIR}/repeatable/${f}: a repeatable file is named NN_name.sql")
  endif()
  string(REGEX REPLACE "\\.sql$" "" name "${f}")
  file(READ "${SQL_DIR}/repeatable/${f}" text)
  string(REPLACE "\r" "" text "${text}")
  string(APPEND all "${name}\n${text}")
  string(REPLACE "\\" "\\\\" text "${text}")
  string(REPLACE "\"" "\\\"" text "${text}")
  string(REPLACE "?" "\\?" text "${text}")
  string(REPLACE "\n" "\\n\"\n\t\"" text "${text}")
  string(APPEND out "\t{0, \"repeatable/${name}\",\n\t\"${text}\"},\n")
endforeach()
string(SHA256 sha "${all}")
string(APPEND out "};\n\nconst size_t aif_n_repeatables = sizeof(aif_repeatables) / sizeof(aif_repeatables[0]);\n")

set(header "/* Generated from sql/NNN_name.sql by lib/embed_sql.cmake: do not edit. */\n")
string(APPEND header "#ifndef AIF_SCHEMA_VERSION_H\n#define AIF_SCHEMA_VERSION_H\n\n")
string(APPEND header "/* The highest migration in sql/: the schema version this build needs. */\n")
string(APPEND header "#define AIF_SCHEMA_VERSION ${last}\n\n")
string(APPEND header "/* The SHA-256 of sql/repeatable/: the functions and views this build needs. */\n")
string(APPEND header "#define AIF_SCHEMA_REPEATABLE_SHA256 \"${sha}\"\n\n#endif\n")

file(WRITE "${OUT_C}" "${out}")
file(WRITE "${OUT_H}" "${header}")

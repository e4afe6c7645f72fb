/*
 * aif-pelog's settings are aif.so's: the arguments of the line of plugstack.conf that loads
 * aif.so, found as Slurm finds it (docs/slurm.md "plugstack.conf"): PlugStackConfig in
 * slurm.conf or a file it includes, else plugstack.conf beside slurm.conf; in plugstack.conf,
 * "#" starts a comment, a line has at most 8 KiB, and a line is
 * "required|optional PATH ARG..." or "include GLOB" (relative to the including file's
 * directory), words split at blanks. The line whose PATH's last component is aif.so is aif's.
 * Both files are root's: the bounds here guard against mistakes, not attacks.
 */
#include <errno.h>
#include <glob.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "plugin.h"

#define PLUGSTACK_LINE_MAX 8190 /* bytes of a plugstack.conf line, its newline not counted */
#define INCLUDE_DEPTH 8
#define BLANKS " \t\r\n"

struct search {
	struct plugstack *out;
	bool found;
	struct aif_diag *diag;
};

/*
 * The next line of f into *buf, without its comment: 1, 0 at the end, -1 when longer than max
 * bytes without its newline (0: any length, as Slurm reads slurm.conf).
 */
static int read_line(FILE *f, char **buf, size_t *cap, size_t max)
{
	ssize_t n = getline(buf, cap, f);
	char *hash;

	if (n < 0)
		return 0;
	if (max && (size_t)n - ((*buf)[n - 1] == '\n') > max)
		return -1;
	if ((hash = strchr(*buf, '#')))
		*hash = '\0';
	return 1;
}

/*
 * The file an include at line of file names: name_len bytes of name, taken from dir
 * (dir_len bytes) unless absolute. -1 with diag when too deep or too long a path.
 */
static int included_path(char out[PATH_MAX], const char *file, int line, int depth, const char *dir,
			 int dir_len, const char *name, int name_len, struct aif_diag *diag)
{
	int n;

	if (depth >= INCLUDE_DEPTH) {
		aif_diag_message(diag, "%s, line %d: includes nested deeper than %d", file, line,
				 INCLUDE_DEPTH);
		return -1;
	}
	n = name[0] == '/' ? snprintf(out, PATH_MAX, "%.*s", name_len, name)
			   : snprintf(out, PATH_MAX, "%.*s/%.*s", dir_len, dir, name_len, name);
	if (n >= PATH_MAX) {
		aif_diag_message(diag, "%s, line %d: the included file's path is too long", file, line);
		return -1;
	}
	return 0;
}

static int load(struct search *s, const char *path, int depth);

/* "include GLOB" of file: each match in turn, until aif's line is found. */
static int include(struct search *s, const char *file, int line, const char *pattern, int depth)
{
	char full[PATH_MAX];
	const char *slash = strrchr(file, '/');
	glob_t g;
	int rc = 0;

	if (included_path(full, file, line, depth, slash ? file : ".", slash ? (int)(slash - file) : 1,
			  pattern, (int)strlen(pattern), s->diag) < 0)
		return -1;
	if (glob(full, 0, NULL, &g) != 0)
		return 0; /* no match is no file, as Slurm takes it */
	for (size_t i = 0; i < g.gl_pathc && rc == 0 && !s->found; i++)
		rc = load(s, g.gl_pathv[i], depth + 1);
	globfree(&g);
	return rc;
}

/* aif.so's arguments from the words after its path. */
static int take_args(struct search *s, const char *file, int line, char **save)
{
	const char *w;

	s->out->ac = 0;
	while ((w = strtok_r(NULL, BLANKS, save))) {
		if (s->out->ac == AIF_PLUGSTACK_MAX_ARGS) {
			aif_diag_message(s->diag, "%s, line %d: more than %d arguments for aif.so", file,
					 line, AIF_PLUGSTACK_MAX_ARGS);
			return -1;
		}
		if (!(s->out->av[s->out->ac] = strdup(w))) {
			aif_diag_message(s->diag, "%s, line %d: out of memory for aif.so's arguments", file,
					 line);
			return -1;
		}
		s->out->ac++;
	}
	snprintf(s->out->where, sizeof(s->out->where), "%s, line %d", file, line);
	s->found = true;
	return 0;
}

static int load(struct search *s, const char *path, int depth)
{
	char *buf = NULL;
	size_t cap = 0;
	FILE *f = fopen(path, "re");
	int rc = 0, line = 0, got;

	if (!f) {
		if (errno == ENOENT)
			return 0; /* as Slurm: a missing plugstack.conf is an empty one */
		aif_diag_message(s->diag, "could not open %s: %s", path, strerror(errno));
		return -1;
	}
	while (rc == 0 && !s->found && (got = read_line(f, &buf, &cap, PLUGSTACK_LINE_MAX)) != 0) {
		char *save;
		const char *type, *word;

		line++;
		if (got < 0) {
			aif_diag_message(s->diag, "%s, line %d: longer than %d bytes", path, line,
					 PLUGSTACK_LINE_MAX);
			rc = -1;
		} else if (!(type = strtok_r(buf, BLANKS, &save))) {
			continue;
		} else if (!(word = strtok_r(NULL, BLANKS, &save))) {
			continue; /* Slurm refuses the file; nothing of aif's here */
		} else if (strcmp(type, "include") == 0) {
			rc = include(s, path, line, word, depth);
		} else if (strcmp(type, "required") == 0 || strcmp(type, "optional") == 0) {
			const char *base = strrchr(word, '/');

			if (strcmp(base ? base + 1 : word, "aif.so") == 0)
				rc = take_args(s, path, line, &save);
		}
	}
	free(buf);
	fclose(f);
	return rc;
}

/*
 * The value of "PlugStackConfig = VALUE" (any case, blanks around "=", VALUE quoted or not)
 * anywhere in line, as Slurm's parser finds a key among others on one line; NULL when absent.
 */
static char *plugstack_key(char *line)
{
	static const char key[] = "PlugStackConfig";
	char *p = line, *v;

	for (; (p = strcasestr(p, key)); p += sizeof(key) - 1) {
		if (p != line && !strchr(BLANKS, p[-1]))
			continue;
		v = p + sizeof(key) - 1;
		v += strspn(v, " \t");
		if (*v++ != '=')
			continue;
		v += strspn(v, " \t");
		if (*v == '"') {
			v++;
			v[strcspn(v, "\"")] = '\0';
		} else {
			v[strcspn(v, BLANKS)] = '\0';
		}
		return v;
	}
	return NULL;
}

static int plugstack_setting(const char *conf, const char *dir, int depth, char *out, size_t size,
			     struct aif_diag *diag);

/* "Include FILE" at line of conf: FILE relative to slurm.conf's directory dir, as for Slurm. */
static int conf_include(const char *conf, int line, const char *file, const char *dir, int depth,
			char *out, size_t size, struct aif_diag *diag)
{
	char path[PATH_MAX];
	size_t n = strcspn(file, BLANKS);

	if (!n)
		return 0;
	if (included_path(path, conf, line, depth, dir, (int)strlen(dir), file, (int)n, diag) < 0)
		return -1;
	return plugstack_setting(path, dir, depth + 1, out, size, diag);
}

/*
 * PlugStackConfig from conf into out, the last one read winning, through its Include lines;
 * out stays as it was when none sets it. Lines of any length: slurm.conf's may be long (a
 * partition's list of accounts).
 */
static int plugstack_setting(const char *conf, const char *dir, int depth, char *out, size_t size,
			     struct aif_diag *diag)
{
	FILE *f = fopen(conf, "re");
	char *buf = NULL;
	size_t cap = 0;
	int rc = 0, line = 0;

	if (!f) {
		aif_diag_message(diag, "could not open %s: %s", conf, strerror(errno));
		return -1;
	}
	while (rc == 0 && read_line(f, &buf, &cap, 0) > 0) {
		char *p = buf + strspn(buf, BLANKS);
		const char *value;

		line++;
		if (strncasecmp(p, "include", 7) == 0 && p[7] && strchr(" \t", p[7]))
			rc = conf_include(conf, line, p + 7 + strspn(p + 7, " \t"), dir, depth, out, size,
					  diag);
		else if ((value = plugstack_key(p)))
			snprintf(out, size, "%s", value);
	}
	free(buf);
	fclose(f);
	return rc;
}

int plugstack_find(const char *slurm_conf, struct plugstack *out, struct aif_diag *diag)
{
	char path[PATH_MAX];
	struct search s = {.out = out, .diag = diag};

	const char *slash = strrchr(slurm_conf, '/');
	char dir[PATH_MAX];

	memset(out, 0, sizeof(*out));
	snprintf(dir, sizeof(dir), "%.*s", slash ? (int)(slash - slurm_conf) : 1,
		 slash ? slurm_conf : ".");
	path[0] = '\0';
	if (plugstack_setting(slurm_conf, dir, 0, path, sizeof(path), diag) < 0)
		return -1;
	if (!path[0] && snprintf(path, sizeof(path), "%s/plugstack.conf", dir) >= (int)sizeof(path)) {
		aif_diag_message(diag, "the directory of %s is too long a path", slurm_conf);
		return -1;
	}
	if (load(&s, path, 0) < 0) {
		plugstack_free(out);
		return -1;
	}
	if (!s.found) {
		aif_diag_message(diag, "no line loads aif.so in %s", path);
		aif_diag_detail(diag, "It was read with the files it includes, as slurm.conf %s names it.",
				slurm_conf);
		aif_diag_hint(diag, "aif-pelog takes aif.so's settings from its line: "
				    "\"required /path/to/aif.so key=value ...\".");
		return -1;
	}
	return 0;
}

void plugstack_free(struct plugstack *p)
{
	for (int i = 0; i < p->ac; i++)
		free(p->av[i]);
	p->ac = 0;
}

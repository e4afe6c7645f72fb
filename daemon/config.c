#include "config.h"

#include <netdb.h>
#include <pwd.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include <libpq-fe.h>

#include "aif_names.h"
#include "aif_proto.h"
#include "aif_settings.h"
#include "listener.h"

#define FIELD(name) offsetof(struct aifd_config, name), sizeof(((struct aifd_config *)0)->name)
#define SECONDS(n) ((n) * 1000UL)
#define STRINGIFY(x) #x
#define NUMBER_TEXT(x) STRINGIFY(x)

static const struct aif_setting settings[] = {
	{"cluster", AIF_SETTING_STRING, FIELD(cluster), 0, 0, NULL},
	{"db", AIF_SETTING_STRING, FIELD(db), 0, 0, NULL},
	{"listen", AIF_SETTING_STRING, FIELD(listen), 0, 0, NULL},
	{"socket", AIF_SETTING_STRING, FIELD(socket), 0, 0, NULL},
	{"munge_socket", AIF_SETTING_STRING, FIELD(munge_socket), 0, 0, NULL},
	{"user", AIF_SETTING_STRING, FIELD(user), 0, 0, NULL},
	{"slurm_user", AIF_SETTING_STRING, FIELD(slurm_user), 0, 0, NULL},
	{"log_level", AIF_SETTING_ENUM, FIELD(log_level), 0, 0, log_level_names},
	{"syslog", AIF_SETTING_BOOL, FIELD(syslog), 0, 0, NULL},
	{"workers", AIF_SETTING_UINT, FIELD(workers), 1, 64, NULL},
	{"refresh_interval", AIF_SETTING_DURATION, FIELD(refresh_interval_ms), 100, SECONDS(3600), NULL},
	{"flush_interval", AIF_SETTING_DURATION, FIELD(flush_interval_ms), 100, SECONDS(3600), NULL},
	{"reconcile_interval", AIF_SETTING_DURATION, FIELD(reconcile_interval_ms), SECONDS(1),
	 SECONDS(24 * 3600), NULL},
};
#define N_SETTINGS (sizeof(settings) / sizeof(settings[0]))

/* What aifd cannot change while it runs: its identity, its database, its sockets, its threads. */
static const char *const restart_only[] = {"cluster", "db", "listen", "socket", "user",
					   "munge_socket", "slurm_user", "workers", "flush_interval",
					   NULL};

/* Never logged: a conninfo may carry a password. */
static const char *const secret[] = {"db", NULL};

static const struct aifd_config defaults = {
	/* Where clients look by default (lib/aif_proto.h, docs/protocol.md). */
	.listen = "0.0.0.0:" NUMBER_TEXT(AIF_PROTO_DEFAULT_PORT),
	.socket = AIF_PROTO_DEFAULT_SOCKET,
	.user = "aif",
	.slurm_user = "slurm",
	.log_level = LOG_LEVEL_INFO,
	.syslog = false,
	.workers = 4,
	.refresh_interval_ms = SECONDS(2),
	.flush_interval_ms = SECONDS(5),
	.reconcile_interval_ms = SECONDS(60),
};

static bool in_list(const char *const *list, const char *key)
{
	for (; *list; list++)
		if (strcmp(*list, key) == 0)
			return true;
	return false;
}

struct load {
	const char *path;
	int errors;
	unsigned lines[N_SETTINGS]; /* the line that set each setting, for the checks below */
};

static void report(const char *path, unsigned line, const struct aif_diag *diag, void *arg)
{
	struct load *load = arg;
	char where[4200];

	if (line)
		snprintf(where, sizeof(where), "%s:%u", path, line);
	else
		snprintf(where, sizeof(where), "%s", path);
	log_diag(LOG_LEVEL_ERROR, where, diag);
	load->errors++;
}

static void invalid(struct load *load, const char *key, const struct aif_diag *diag)
{
	unsigned line = 0;

	for (size_t i = 0; i < N_SETTINGS; i++)
		if (strcmp(settings[i].key, key) == 0)
			line = load->lines[i];
	report(load->path, line, diag, load);
}


static void check_required(struct load *load, const char *key, const char *value)
{
	struct aif_diag diag;

	if (value[0])
		return;
	aif_diag_clear(&diag);
	aif_diag_message(&diag, "missing required setting \"%s\"", key);
	if (strcmp(key, "cluster") == 0)
		aif_diag_hint(&diag, "Set it to this cluster's ClusterName from slurm.conf.");
	else
		aif_diag_hint(&diag, "Set it to a libpq connection string, such as "
				     "\"host=db.example.org dbname=aif user=aifd\".");
	report(load->path, 0, &diag, load);
}

static void check_absolute(struct load *load, const char *key, const char *path)
{
	struct aif_diag diag;

	if (path[0] == '\0' || path[0] == '/')
		return;
	aif_diag_clear(&diag);
	aif_diag_message(&diag, "invalid value for setting \"%s\": \"%s\"", key, path);
	aif_diag_detail(&diag, "The value must be an absolute path.");
	invalid(load, key, &diag);
}

/* Resolved once here, so that a missing user is a config error, found by --check-config too. */
static void check_user(struct load *load, const char *key, const char *name, uid_t *uid, gid_t *gid)
{
	const struct passwd *pw = getpwnam(name);
	struct aif_diag diag;

	aif_diag_clear(&diag);
	if (!pw) {
		aif_diag_message(&diag, "invalid value for setting \"%s\": user \"%s\" does not exist",
				 key, name);
		aif_diag_hint(&diag, strcmp(key, "user") == 0 ?
				     "Create an unprivileged system user for aifd, such as with "
				     "\"adduser --system --group aif\"." :
				     "Set it to the SlurmUser of slurm.conf.");
		invalid(load, key, &diag);
		return;
	}
	if (strcmp(key, "user") == 0 && pw->pw_uid == 0) {
		aif_diag_message(&diag, "invalid value for setting \"user\": \"%s\" is root", name);
		aif_diag_detail(&diag, "aifd does not run as root.");
		aif_diag_hint(&diag, "Name an unprivileged system user.");
		invalid(load, key, &diag);
		return;
	}
	*uid = pw->pw_uid;
	if (gid)
		*gid = pw->pw_gid;
}

static void validate(struct load *load, struct aifd_config *config)
{
	struct aif_diag diag;
	struct addrinfo *addresses;

	check_required(load, "cluster", config->cluster);
	check_required(load, "db", config->db);

	aif_diag_clear(&diag);
	if (config->cluster[0] && !aif_name_valid_cluster(config->cluster)) {
		aif_diag_message(&diag, "invalid value for setting \"cluster\": \"%s\"", config->cluster);
		aif_diag_detail(&diag, "A cluster name is 1 to 63 lower-case letters, digits, \"_\" and "
				       "\"-\", starting with a letter or digit.");
		aif_diag_hint(&diag, "Use the ClusterName of slurm.conf, in lower case.");
		invalid(load, "cluster", &diag);
	}
	if (config->db[0]) {
		char *message = NULL;
		PQconninfoOption *options = PQconninfoParse(config->db, &message);
		if (options) {
			PQconninfoFree(options);
		} else {
			aif_diag_clear(&diag);
			aif_diag_message(&diag, "invalid value for setting \"db\"");
			aif_diag_detail(&diag, "%s", message ? message : "out of memory");
			aif_diag_hint(&diag, "Give a libpq connection string (\"host=... dbname=...\") or a "
					     "postgresql:// URI.");
			invalid(load, "db", &diag);
			PQfreemem(message);
		}
	}
	if (strcmp(config->listen, "none") != 0) {
		if (listener_resolve_tcp(config->listen, &addresses, &diag) == 0) {
			freeaddrinfo(addresses);
		} else {
			char message_text[sizeof(diag.message)];
			snprintf(message_text, sizeof(message_text), "%s", diag.message);
			aif_diag_message(&diag, "invalid value for setting \"listen\": %s", message_text);
			invalid(load, "listen", &diag);
		}
	}
	check_absolute(load, "socket", config->socket);
	check_absolute(load, "munge_socket", config->munge_socket);
	check_user(load, "user", config->user, &config->user_uid, &config->user_gid);
	check_user(load, "slurm_user", config->slurm_user, &config->slurm_uid, NULL);
}

int config_load(const char *path, struct aifd_config *config)
{
	struct load load = {.path = path};

	*config = defaults;
	if (aif_settings_read_file(settings, N_SETTINGS, config, path, load.lines, report, &load) < 0)
		return load.errors; /* unreadable: reported; checking the defaults would only confuse */
	validate(&load, config);
	return load.errors;
}

/* A setting's value as the config file would write it. */
static void format_value(const struct aif_setting *s, const struct aifd_config *config, char *buf,
			 size_t size)
{
	const char *field = (const char *)config + s->offset;

	switch (s->type) {
	case AIF_SETTING_STRING:
		snprintf(buf, size, "%s", field);
		return;
	case AIF_SETTING_BOOL:
		snprintf(buf, size, "%s", *(const bool *)field ? "yes" : "no");
		return;
	case AIF_SETTING_UINT:
		snprintf(buf, size, "%lu", *(const unsigned long *)field);
		return;
	case AIF_SETTING_DURATION:
		snprintf(buf, size, "%lums", *(const unsigned long *)field);
		return;
	case AIF_SETTING_ENUM:
		snprintf(buf, size, "%s", s->choices[*(const int *)field]);
		return;
	}
	snprintf(buf, size, "?");
}

static size_t field_size(const struct aif_setting *s)
{
	switch (s->type) {
	case AIF_SETTING_STRING:
		return s->size;
	case AIF_SETTING_BOOL:
		return sizeof(bool);
	case AIF_SETTING_ENUM:
		return sizeof(int);
	case AIF_SETTING_UINT:
	case AIF_SETTING_DURATION:
		return sizeof(unsigned long);
	}
	return 0;
}

int config_reload(const char *path, struct aifd_config *running)
{
	struct aifd_config fresh;
	char was[1024], now[1024];
	int changes = 0;

	if (config_load(path, &fresh) != 0) {
		log_error("configuration file \"%s\" has errors; keeping the running configuration", path);
		return -1;
	}
	for (size_t i = 0; i < N_SETTINGS; i++) {
		const struct aif_setting *s = &settings[i];
		bool hide = in_list(secret, s->key);

		format_value(s, running, was, sizeof(was));
		format_value(s, &fresh, now, sizeof(now));
		if (strcmp(was, now) == 0)
			continue;
		if (in_list(restart_only, s->key)) {
			if (hide)
				log_warning("setting \"%s\" changed; it takes effect when aifd is restarted", s->key);
			else
				log_warning("setting \"%s\" changed from \"%s\" to \"%s\"; it takes effect when aifd is restarted",
					    s->key, was, now);
			memcpy((char *)&fresh + s->offset, (const char *)running + s->offset, field_size(s));
			continue;
		}
		if (hide)
			log_info("setting \"%s\" changed", s->key);
		else
			log_info("setting \"%s\" changed from \"%s\" to \"%s\"", s->key, was, now);
		changes++;
	}
	/* "user" is restart-only: aifd keeps the identity it runs as. */
	fresh.user_uid = running->user_uid;
	fresh.user_gid = running->user_gid;
	*running = fresh;
	log_setup((enum log_level)running->log_level, running->syslog);
	log_info("reloaded configuration file \"%s\" (%d %s applied)", path, changes,
		 changes == 1 ? "change" : "changes");
	return 0;
}

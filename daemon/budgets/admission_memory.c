#include "admission_memory.h"

#include <pthread.h>
#include <stdio.h>
#include <string.h>

struct slot {
	bool used;
	uint32_t job, uid;
	int64_t at_ms; /* when remembered */
	char cluster[64];
	char verdict[sizeof(((struct admission *)0)->verdict)];
	char reason[sizeof(((struct admission *)0)->reason)];
	char project[sizeof(((struct admission *)0)->project)];
	char sector[sizeof(((struct admission *)0)->sector)];
};

static pthread_mutex_t memory_lock = PTHREAD_MUTEX_INITIALIZER;
static struct slot memory[ADMISSION_MEMORY_SLOTS];

static struct slot *slot_of(uint32_t job)
{
	return &memory[job % ADMISSION_MEMORY_SLOTS];
}

static bool holds(const struct slot *s, const char *cluster, uint32_t job, uint32_t uid)
{
	return s->used && s->job == job && s->uid == uid && strcmp(s->cluster, cluster) == 0;
}

void admission_memory_put(const char *cluster, uint32_t job, uint32_t uid,
			  const struct admission *adm, int64_t now_ms)
{
	struct slot *s = slot_of(job);

	/* A cluster name too long to hold would be a name compared wrongly: not remembered. */
	if (strlen(cluster) >= sizeof(s->cluster))
		return;
	pthread_mutex_lock(&memory_lock);
	s->used = true;
	s->job = job;
	s->uid = uid;
	s->at_ms = now_ms;
	snprintf(s->cluster, sizeof(s->cluster), "%s", cluster);
	snprintf(s->verdict, sizeof(s->verdict), "%s", adm->verdict);
	snprintf(s->reason, sizeof(s->reason), "%s", adm->reason);
	snprintf(s->project, sizeof(s->project), "%s", adm->project);
	snprintf(s->sector, sizeof(s->sector), "%s", adm->sector);
	pthread_mutex_unlock(&memory_lock);
}

void admission_memory_forget(const char *cluster, uint32_t job, uint32_t uid)
{
	struct slot *s = slot_of(job);

	pthread_mutex_lock(&memory_lock);
	if (holds(s, cluster, job, uid))
		s->used = false;
	pthread_mutex_unlock(&memory_lock);
}

bool admission_memory_get(const char *cluster, uint32_t job, uint32_t uid, struct admission *out,
			  int64_t now_ms)
{
	const struct slot *s = slot_of(job);
	bool found;

	pthread_mutex_lock(&memory_lock);
	found = holds(s, cluster, job, uid) && now_ms - s->at_ms < ADMISSION_MEMORY_MS;
	if (found) {
		memset(out, 0, sizeof(*out));
		snprintf(out->verdict, sizeof(out->verdict), "%s", s->verdict);
		snprintf(out->reason, sizeof(out->reason), "%s", s->reason);
		snprintf(out->project, sizeof(out->project), "%s", s->project);
		snprintf(out->sector, sizeof(out->sector), "%s", s->sector);
	}
	pthread_mutex_unlock(&memory_lock);
	return found;
}

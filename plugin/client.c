/* One request to aifd with the plugin's settings: the one place the plugin talks to aifd. */
#include <string.h>

#include "aif_client.h"
#include "plugin.h"

struct aif_client *client_new(const struct plugin_settings *s, struct aif_diag *diag)
{
	struct aif_client_options opts = {0};

	opts.server = s->server;
	opts.timeout_ms = s->timeout_ms;
	opts.munge_socket = s->munge_socket[0] ? s->munge_socket : NULL;
	return aif_client_new(&opts, diag);
}

int client_ask_by(const struct plugin_settings *s, const struct aif_proto_msg *request,
	       struct aif_proto_msg *answer, int64_t deadline_ms, struct aif_diag *diag)
{
	struct aif_client *client;
	int rc;

	aif_proto_msg_init(answer, AIF_PROTO_NONE);
	client = client_new(s, diag);
	if (!client)
		return -1;
	rc = aif_client_request_by(client, request, answer, deadline_ms, diag);
	aif_client_free(client);
	return rc;
}

int client_ask(const struct plugin_settings *s, const struct aif_proto_msg *request,
	    struct aif_proto_msg *answer, struct aif_diag *diag)
{
	/*
	 * No deadline of ours: the client's own timeout bounds the request, so a timeout says
	 * "after <timeout> ms", not the millisecond less left once the client was made.
	 */
	return client_ask_by(s, request, answer, INT64_MAX, diag);
}

struct aif_client *client_send(const struct plugin_settings *s, const struct aif_proto_msg *request,
			       struct aif_diag *diag)
{
	struct aif_client *client = client_new(s, diag);

	if (client && aif_client_send_by(client, request, INT64_MAX, diag) < 0) {
		aif_client_free(client);
		return NULL;
	}
	return client;
}

bool client_answer_is_no_project(const struct aif_proto_msg *answer)
{
	const char *reason = aif_proto_get(&answer->header, "reason");

	return answer->kind == AIF_PROTO_REFUSE && reason && strcmp(reason, "no-project") == 0;
}

void client_error_refusal(const struct aif_proto_msg *answer, const char *what, struct aif_diag *out)
{
	struct aif_diag why;

	aif_proto_response_diag(answer, &why);
	aif_diag_clear(out);
	aif_diag_message(out, "job refused: aifd could not %s it", what);
	if (why.message[0] && why.detail[0]) /* (aifd's primary message has no period) */
		aif_diag_detail(out, "%s. %s", why.message, why.detail);
	else
		aif_diag_detail(out, "%s", why.message[0] ? why.message : "aifd gave no reason.");
	aif_diag_hint(out, "%s", why.hint[0] ? why.hint : "Tell your site's support; the reason is in aifd's log.");
}

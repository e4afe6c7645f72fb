/* One request to aifd with the plugin's settings: the one place the plugin talks to aifd. */
#include "aif_client.h"
#include "plugin.h"

int aif_ask(const struct aif_plugin_settings *s, const struct aif_proto_msg *request,
	    struct aif_proto_msg *answer, struct aif_diag *diag)
{
	struct aif_client_options opts = {0};
	struct aif_client *client;
	int rc;

	opts.server = s->server;
	opts.timeout_ms = s->timeout_ms;
	opts.munge_socket = s->munge_socket[0] ? s->munge_socket : NULL;
	aif_proto_msg_init(answer, AIF_PROTO_NONE);
	client = aif_client_new(&opts, diag);
	if (!client)
		return -1;
	rc = aif_client_request(client, request, answer, diag);
	aif_client_free(client);
	return rc;
}

/*
 * YAML text to a small tree with positions, through libyaml's event API. The event API (not
 * the document API) is what lets us reject an alias where it is written, bound the nesting
 * depth and the node count, and keep the whole tree under our own allocation.
 */
#include "aif_budgets_internal.h"

#include <stdlib.h>
#include <string.h>
#include <yaml.h>

struct builder {
	struct budgets_issues *issues;
	const char *text;
	size_t len;
	struct ynode *root;
	struct ynode *stack[AIF_BUDGETS_MAX_DEPTH]; /* the open lists and mappings */
	size_t depth;
	size_t nodes;
	int documents;
	bool failed; /* the tree cannot be trusted: dropped */
};

static void error_at(struct builder *b, const yaml_mark_t *mark, const char *message)
{
	budgets_issue(b->issues, false, (unsigned)mark->line + 1, (unsigned)mark->column + 1, "%s",
		      message);
}

void budgets_tree_free(struct ynode *node)
{
	if (!node)
		return;
	for (size_t i = 0; i < node->n_child; i++)
		budgets_tree_free(node->child[i]);
	free(node->child);
	free(node->text);
	free(node);
}

static void out_of_memory(struct builder *b)
{
	if (!b->failed)
		budgets_issue(b->issues, false, 0, 0, "out of memory");
	b->failed = true;
}

static struct ynode *new_node(struct builder *b, enum ynode_kind kind, const yaml_mark_t *mark)
{
	struct ynode *node;

	if (++b->nodes > AIF_BUDGETS_MAX_NODES) {
		char limit[64];
		snprintf(limit, sizeof(limit),
			 "more than %d yaml nodes; a budgets file is far smaller",
			 AIF_BUDGETS_MAX_NODES);
		error_at(b, mark, limit);
		b->failed = true;
		return NULL;
	}
	node = calloc(1, sizeof(*node));
	if (!node) {
		out_of_memory(b);
		return NULL;
	}
	node->kind = kind;
	node->line = (unsigned)mark->line + 1;
	node->column = (unsigned)mark->column + 1;
	return node;
}

/* Make node the root or the next child of the innermost open collection; takes ownership. */
static void attach(struct builder *b, struct ynode *node)
{
	struct ynode *parent;

	if (!node)
		return;
	if (b->depth == 0) {
		budgets_tree_free(b->root);
		b->root = node;
		return;
	}
	parent = b->stack[b->depth - 1];
	if (parent->n_child == parent->cap_child) {
		size_t cap = parent->cap_child ? parent->cap_child * 2 : 8;
		struct ynode **grown = realloc(parent->child, cap * sizeof(*grown));
		if (!grown) {
			budgets_tree_free(node);
			out_of_memory(b);
			return;
		}
		parent->child = grown;
		parent->cap_child = cap;
	}
	parent->child[parent->n_child++] = node;
}

/* Anchors and tags are refused, but the node is kept so that validation goes on. */
static void check_properties(struct builder *b, const yaml_mark_t *mark, const yaml_char_t *anchor,
			     const yaml_char_t *tag)
{
	if (anchor)
		budgets_issue(b->issues, false, (unsigned)mark->line + 1,
			      (unsigned)mark->column + 1,
			      "yaml anchors are not supported (found &%.64s); write each value out "
			      "in full",
			      (const char *)anchor);
	if (tag) {
		/* Show "!!str" as written, not libyaml's resolved "tag:yaml.org,2002:str". */
		static const char core[] = "tag:yaml.org,2002:";
		const char *text = (const char *)tag;
		bool is_core = strncmp(text, core, sizeof(core) - 1) == 0;
		budgets_issue(b->issues, false, (unsigned)mark->line + 1,
			      (unsigned)mark->column + 1,
			      "yaml tags are not supported (found %s%.64s); remove the tag",
			      is_core ? "!!" : "", is_core ? text + sizeof(core) - 1 : text);
	}
}

static void on_scalar(struct builder *b, const yaml_event_t *event)
{
	const char *value = (const char *)event->data.scalar.value;
	size_t length = event->data.scalar.length;
	struct ynode *node;

	check_properties(b, &event->start_mark, event->data.scalar.anchor, event->data.scalar.tag);
	if (memchr(value, '\0', length)) {
		error_at(b, &event->start_mark, "strings must not contain NUL characters");
		attach(b, new_node(b, YNODE_BAD, &event->start_mark));
		return;
	}
	node = new_node(b, YNODE_SCALAR, &event->start_mark);
	if (!node)
		return;
	node->quoted = event->data.scalar.style != YAML_PLAIN_SCALAR_STYLE;
	node->text = malloc(length + 1);
	if (!node->text) {
		budgets_tree_free(node);
		out_of_memory(b);
		return;
	}
	memcpy(node->text, value, length);
	node->text[length] = '\0';
	attach(b, node);
}

static void on_collection_start(struct builder *b, const yaml_event_t *event, enum ynode_kind kind,
				const yaml_char_t *anchor, const yaml_char_t *tag)
{
	struct ynode *node;

	check_properties(b, &event->start_mark, anchor, tag);
	if (b->depth == AIF_BUDGETS_MAX_DEPTH) {
		/*
		 * Stop here, as for a syntax error: libyaml's time grows with the square of the
		 * nesting depth, so reading on through a deep subtree could take hours.
		 */
		char limit[64];
		snprintf(limit, sizeof(limit), "nesting deeper than %d levels",
			 AIF_BUDGETS_MAX_DEPTH);
		error_at(b, &event->start_mark, limit);
		b->failed = true;
		return;
	}
	node = new_node(b, kind, &event->start_mark);
	if (!node)
		return;
	attach(b, node);
	if (!b->failed)
		b->stack[b->depth++] = node;
}

static void on_collection_end(struct builder *b)
{
	if (b->depth)
		b->depth--;
}

/* libyaml gives a reader error (bad UTF-8, control characters) as a byte offset only. */
static void reader_position(const struct builder *b, size_t offset, unsigned *line,
			    unsigned *column)
{
	size_t i = 0;

	*line = 1;
	*column = 1;
	if (b->len >= 3 && memcmp(b->text, "\xef\xbb\xbf", 3) == 0)
		i = 3;
	for (; i < offset && i < b->len; i++) {
		unsigned char c = (unsigned char)b->text[i];
		if (c == '\n' || (c == '\r' && (i + 1 >= b->len || b->text[i + 1] != '\n'))) {
			(*line)++;
			*column = 1;
		} else if ((c & 0xc0) != 0x80 && c != '\r') {
			(*column)++; /* count characters, as libyaml's marks do, not bytes */
		}
	}
}

static void syntax_error(struct builder *b, const yaml_parser_t *parser)
{
	unsigned line, column;

	switch (parser->error) {
	case YAML_MEMORY_ERROR:
		out_of_memory(b);
		return;
	case YAML_READER_ERROR:
		reader_position(b, parser->problem_offset, &line, &column);
		if (parser->problem_value >= 0)
			budgets_issue(b->issues, false, line, column, "invalid input: %s (0x%02x)",
				      parser->problem, (unsigned)parser->problem_value);
		else
			budgets_issue(b->issues, false, line, column, "invalid input: %s",
				      parser->problem);
		break;
	default:
		if (parser->context)
			budgets_issue(b->issues, false, (unsigned)parser->problem_mark.line + 1,
				      (unsigned)parser->problem_mark.column + 1,
				      "syntax error: %s (%s at line %u, column %u)",
				      parser->problem ? parser->problem : "invalid yaml",
				      parser->context, (unsigned)parser->context_mark.line + 1,
				      (unsigned)parser->context_mark.column + 1);
		else
			budgets_issue(b->issues, false, (unsigned)parser->problem_mark.line + 1,
				      (unsigned)parser->problem_mark.column + 1, "syntax error: %s",
				      parser->problem ? parser->problem : "invalid yaml");
		break;
	}
	b->failed = true;
}

/* Feed one event to the builder; false when there is nothing more to read. */
static bool on_event(struct builder *b, const yaml_event_t *event)
{
	switch (event->type) {
	case YAML_DOCUMENT_START_EVENT:
		if (++b->documents > 1) {
			error_at(b, &event->start_mark,
				 "more than one yaml document; a budgets file holds exactly one");
			return false;
		}
		return true;
	case YAML_ALIAS_EVENT:
		budgets_issue(b->issues, false, (unsigned)event->start_mark.line + 1,
			      (unsigned)event->start_mark.column + 1,
			      "yaml aliases are not supported (found *%.64s); write the value out "
			      "in full",
			      (const char *)event->data.alias.anchor);
		attach(b, new_node(b, YNODE_BAD, &event->start_mark));
		return !b->failed;
	case YAML_SCALAR_EVENT:
		on_scalar(b, event);
		return !b->failed;
	case YAML_SEQUENCE_START_EVENT:
		on_collection_start(b, event, YNODE_LIST, event->data.sequence_start.anchor,
				    event->data.sequence_start.tag);
		return !b->failed;
	case YAML_MAPPING_START_EVENT:
		on_collection_start(b, event, YNODE_MAP, event->data.mapping_start.anchor,
				    event->data.mapping_start.tag);
		return !b->failed;
	case YAML_SEQUENCE_END_EVENT:
	case YAML_MAPPING_END_EVENT:
		on_collection_end(b);
		return true;
	case YAML_STREAM_END_EVENT:
		return false;
	default:
		return true;
	}
}

struct ynode *budgets_tree_parse(const char *text, size_t len, struct budgets_issues *issues)
{
	static const char empty_file[] =
		"empty file; expected a mapping with keys version, sectors, periods and factories";
	struct builder b = {.issues = issues, .text = text, .len = len};
	yaml_parser_t parser;
	yaml_event_t event;
	bool more = true;

	if (!yaml_parser_initialize(&parser)) {
		budgets_issue(issues, false, 0, 0, "out of memory");
		return NULL;
	}
	yaml_parser_set_input_string(&parser, (const unsigned char *)text, len);
	while (more) {
		if (!yaml_parser_parse(&parser, &event)) {
			syntax_error(&b, &parser);
			break;
		}
		more = on_event(&b, &event);
		yaml_event_delete(&event);
	}
	yaml_parser_delete(&parser);
	if (b.failed) {
		budgets_tree_free(b.root);
		return NULL;
	}
	if (!b.root)
		budgets_issue(issues, false, 0, 0, "%s", empty_file);
	return b.root;
}

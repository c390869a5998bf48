/*
 * Sapphire: the C side of libpurple's request UI operations.
 *
 * Three request UI operations receive their choices or actions as a C
 * `va_list`, which Rust cannot read portably. These wrappers walk the list
 * and hand plain arrays to the Rust implementations (src/backend/purple/).
 * The arrays (and the strings they point to) are only valid during the call.
 */
#include "purple-wrapper.h"

/* The Rust callbacks have the types the header gives them. */
__attribute__((unused)) static SapphireRequestChoiceRs const check_choice = sapphire_request_choice_rs;
__attribute__((unused)) static SapphireRequestActionRs const check_action = sapphire_request_action_rs;

/* Choices: pairs of (const char *text, int value), ended by a NULL text. */
void *sapphire_request_choice(const char *title, const char *primary,
                              const char *secondary, int default_value,
                              const char *ok_text, GCallback ok_cb,
                              const char *cancel_text, GCallback cancel_cb,
                              PurpleAccount *account, const char *who,
                              PurpleConversation *conv, void *user_data,
                              va_list choices)
{
	GPtrArray *texts = g_ptr_array_new();
	GArray *values = g_array_new(FALSE, FALSE, sizeof(int));
	const char *text;
	void *handle;

	while ((text = va_arg(choices, const char *)) != NULL) {
		int value = va_arg(choices, int);
		g_ptr_array_add(texts, (gpointer)text);
		g_array_append_val(values, value);
	}
	handle = sapphire_request_choice_rs(title, primary, secondary,
	                                    default_value, ok_text, ok_cb,
	                                    cancel_text, cancel_cb, account, who,
	                                    conv, user_data, texts->len,
	                                    (const char *const *)texts->pdata,
	                                    (const int *)values->data);
	g_ptr_array_free(texts, TRUE);
	g_array_free(values, TRUE);
	return handle;
}

/* Actions: action_count pairs of (const char *text, GCallback cb). */
static void *collect_actions(const char *title, const char *primary,
                             const char *secondary, int default_action,
                             PurpleAccount *account, const char *who,
                             PurpleConversation *conv, void *user_data,
                             size_t action_count, va_list actions)
{
	const char **texts = g_new0(const char *, action_count + 1);
	GCallback *callbacks = g_new0(GCallback, action_count + 1);
	size_t i;
	void *handle;

	for (i = 0; i < action_count; i++) {
		texts[i] = va_arg(actions, const char *);
		callbacks[i] = va_arg(actions, GCallback);
	}
	handle = sapphire_request_action_rs(title, primary, secondary,
	                                    default_action, account, who, conv,
	                                    user_data, action_count, texts,
	                                    callbacks);
	g_free(texts);
	g_free(callbacks);
	return handle;
}

void *sapphire_request_action(const char *title, const char *primary,
                              const char *secondary, int default_action,
                              PurpleAccount *account, const char *who,
                              PurpleConversation *conv, void *user_data,
                              size_t action_count, va_list actions)
{
	return collect_actions(title, primary, secondary, default_action,
	                       account, who, conv, user_data, action_count,
	                       actions);
}

/* The icon is not forwarded (yet); the prompt itself is. */
void *sapphire_request_action_with_icon(const char *title, const char *primary,
                                        const char *secondary,
                                        int default_action,
                                        PurpleAccount *account, const char *who,
                                        PurpleConversation *conv,
                                        gconstpointer icon_data,
                                        gsize icon_size, void *user_data,
                                        size_t action_count, va_list actions)
{
	(void)icon_data;
	(void)icon_size;
	return collect_actions(title, primary, secondary, default_action,
	                       account, who, conv, user_data, action_count,
	                       actions);
}

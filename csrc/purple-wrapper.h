/* Input for bindgen (see build.rs): everything Sapphire calls in libpurple,
 * plus the C shim's entry points (csrc/shim.c). */
#ifndef SAPPHIRE_PURPLE_WRAPPER_H
#define SAPPHIRE_PURPLE_WRAPPER_H

#include <purple.h>
#include <stdarg.h>
#include <stddef.h>

/* Implemented in Rust (src/backend/purple/uiops/request.rs), called by the
 * shim with the va_list turned into arrays (valid during the call). The
 * typedefs are checked against the Rust functions there. */
typedef void *(*SapphireRequestChoiceRs)(
	const char *title, const char *primary, const char *secondary,
	int default_value, const char *ok_text, GCallback ok_cb,
	const char *cancel_text, GCallback cancel_cb, PurpleAccount *account,
	const char *who, PurpleConversation *conv, void *user_data, size_t count,
	const char *const *texts, const int *values);
typedef void *(*SapphireRequestActionRs)(
	const char *title, const char *primary, const char *secondary,
	int default_action, PurpleAccount *account, const char *who,
	PurpleConversation *conv, void *user_data, size_t count,
	const char *const *texts, const GCallback *callbacks);

void *sapphire_request_choice_rs(const char *title, const char *primary,
                                 const char *secondary, int default_value,
                                 const char *ok_text, GCallback ok_cb,
                                 const char *cancel_text, GCallback cancel_cb,
                                 PurpleAccount *account, const char *who,
                                 PurpleConversation *conv, void *user_data,
                                 size_t count, const char *const *texts,
                                 const int *values);
void *sapphire_request_action_rs(const char *title, const char *primary,
                                 const char *secondary, int default_action,
                                 PurpleAccount *account, const char *who,
                                 PurpleConversation *conv, void *user_data,
                                 size_t count, const char *const *texts,
                                 const GCallback *callbacks);

/* The shim's entry points: libpurple's request UI ops with a va_list. */

void *sapphire_request_choice(const char *title, const char *primary,
                              const char *secondary, int default_value,
                              const char *ok_text, GCallback ok_cb,
                              const char *cancel_text, GCallback cancel_cb,
                              PurpleAccount *account, const char *who,
                              PurpleConversation *conv, void *user_data,
                              va_list choices);
void *sapphire_request_action(const char *title, const char *primary,
                              const char *secondary, int default_action,
                              PurpleAccount *account, const char *who,
                              PurpleConversation *conv, void *user_data,
                              size_t action_count, va_list actions);
void *sapphire_request_action_with_icon(const char *title, const char *primary,
                                        const char *secondary,
                                        int default_action,
                                        PurpleAccount *account, const char *who,
                                        PurpleConversation *conv,
                                        gconstpointer icon_data,
                                        gsize icon_size, void *user_data,
                                        size_t action_count, va_list actions);

#endif

/* Input for bindgen (see build.rs): everything Sapphire calls in libpurple,
 * plus the C shim's entry points (csrc/shim.c). */
#include <purple.h>
#include <stdarg.h>

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

/*
 * text.h - which bytes of hostile text (server replies, argv, headers) may
 * reach a terminal, a log or a message as they are.
 *
 * Printable ASCII and well-formed UTF-8 pass; C0 and C1 control characters
 * (U+0000-U+001F, U+007F-U+009F: ESC, and CSI as 0x9B or C2 9B, would drive
 * a terminal), malformed UTF-8, overlong forms and surrogates do not.
 */
#ifndef SWITCHMAIL_TEXT_H
#define SWITCHMAIL_TEXT_H

#include <stddef.h>

/* Octets of the safe character starting at s[0..len), or 0 when s[0] must
 * be escaped or replaced. */
static inline size_t text_safe_len(const unsigned char *s, size_t len)
{
	unsigned char c = s[0];
	size_t n;

	if (c >= 0x20 && c < 0x7f)
		return 1;
	if (c < 0xc2 || c > 0xf4) /* controls, DEL, stray continuations */
		return 0;
	n = c < 0xe0 ? 2 : c < 0xf0 ? 3 : 4;
	if (n > len)
		return 0;
	for (size_t i = 1; i < n; i++)
		if ((s[i] & 0xc0) != 0x80)
			return 0;
	if ((c == 0xc2 && s[1] < 0xa0) ||  /* C1 controls */
	    (c == 0xe0 && s[1] < 0xa0) ||  /* overlong */
	    (c == 0xed && s[1] >= 0xa0) || /* surrogates */
	    (c == 0xf0 && s[1] < 0x90) ||  /* overlong */
	    (c == 0xf4 && s[1] >= 0x90))   /* beyond U+10FFFF */
		return 0;
	return n;
}

#endif

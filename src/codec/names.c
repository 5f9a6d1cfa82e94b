/*
 * UTF-8 validation and the naming rules of SPEC §1.
 *
 * Invariants:
 *   - Both checks work on (pointer, length), never on NUL termination, so an
 *     embedded NUL byte is seen (and, in a name, rejected as a control
 *     character) instead of silently truncating the string.
 *   - UTF-8 is checked strictly (RFC 3629): shortest form only, no UTF-16
 *     surrogates (U+D800..U+DFFF), nothing above U+10FFFF. A string that is
 *     not valid UTF-8 is reported as such before any naming rule is applied,
 *     so the error class does not depend on where in the name a problem is.
 *   - A name is 1..CHORUS_NAME_MAX bytes with no control character (C0, DEL,
 *     C1), no Unicode White_Space character and no '|' (the key separator of
 *     the output topics); breaking one of these is CHORUS_ERR_INVALID_NAME.
 *   - A name that obeys every rule above but begins with "__" is reserved
 *     for internal series such as __ensemble__: CHORUS_ERR_RESERVED_NAME, a
 *     reason code of its own (SPEC §2), checked last so that it is never
 *     reported for a name that is also malformed.
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "chorus/codec.h"
#include "codec_int.h"

/* ====================================================================== */
/* UTF-8                                                                  */
/* ====================================================================== */

/*
 * Decode one code point at s[*i] (i < len). On success advance *i and
 * return the code point; on failure return -1 and leave *i at the bad byte.
 * The lead-byte table follows RFC 3629 §4: the second byte's range is
 * narrowed for E0 (no overlongs), ED (no surrogates), F0 (no overlongs) and
 * F4 (nothing above U+10FFFF); C0, C1 and F5..FF never start a sequence.
 */
static long utf8_next(const unsigned char *s, size_t len, size_t *i) {
        size_t p = *i;
        unsigned c = s[p];
        unsigned lo = 0x80, hi = 0xBF;
        size_t need;
        unsigned long cp;

        if (c < 0x80) {
                *i = p + 1;
                return (long)c;
        }
        if (c >= 0xC2 && c <= 0xDF) {
                need = 1;
                cp = c & 0x1F;
        } else if (c >= 0xE0 && c <= 0xEF) {
                need = 2;
                cp = c & 0x0F;
                if (c == 0xE0)
                        lo = 0xA0;
                else if (c == 0xED)
                        hi = 0x9F;
        } else if (c >= 0xF0 && c <= 0xF4) {
                need = 3;
                cp = c & 0x07;
                if (c == 0xF0)
                        lo = 0x90;
                else if (c == 0xF4)
                        hi = 0x8F;
        } else {
                return -1;
        }
        if (len - p - 1 < need)
                return -1;
        for (size_t k = 1; k <= need; k++) {
                unsigned b = s[p + k];

                if (b < lo || b > hi)
                        return -1;
                lo = 0x80; /* only the second byte has a narrowed range */
                hi = 0xBF;
                cp = (cp << 6) | (b & 0x3F);
        }
        *i = p + need + 1;
        return (long)cp;
}

chorus_err_t chorus_codec_utf8_check(const char *s, size_t len, char *why, size_t why_size) {
        const unsigned char *u = (const unsigned char *)s;
        size_t i = 0;

        if (len && !s)
                return CHORUS_ERR_INVALID_UTF8;
        while (i < len) {
                /* ASCII fast path: most text is plain ASCII. */
                if (u[i] < 0x80) {
                        i++;
                        continue;
                }
                if (utf8_next(u, len, &i) < 0) {
                        chorus_seterr(why, why_size, "invalid UTF-8 at byte %zu (0x%02x)", i, u[i]);
                        return CHORUS_ERR_INVALID_UTF8;
                }
        }
        return CHORUS_OK;
}

/* ====================================================================== */
/* Names                                                                  */
/* ====================================================================== */

static int is_control(unsigned long cp) {
        return cp < 0x20 || cp == 0x7F || (cp >= 0x80 && cp <= 0x9F);
}

/* Unicode White_Space (PropList.txt) outside the control ranges above. */
static int is_space(unsigned long cp) {
        return cp == 0x20 || cp == 0xA0 || cp == 0x1680 || (cp >= 0x2000 && cp <= 0x200A) ||
               cp == 0x2028 || cp == 0x2029 || cp == 0x202F || cp == 0x205F || cp == 0x3000;
}

chorus_err_t chorus_codec_name_explain(const char *name, size_t len, char *why, size_t why_size) {
        const unsigned char *u = (const unsigned char *)name;
        chorus_err_t err;
        size_t i = 0;

        if (len == 0 || !name) {
                chorus_seterr(why, why_size, "empty name");
                return CHORUS_ERR_INVALID_NAME;
        }
        if (len > CHORUS_NAME_MAX) {
                chorus_seterr(why, why_size, "%zu bytes exceeds %d", len, CHORUS_NAME_MAX);
                return CHORUS_ERR_INVALID_NAME;
        }
        if ((err = chorus_codec_utf8_check(name, len, why, why_size)))
                return err;
        while (i < len) {
                size_t at = i;
                long cp = utf8_next(u, len, &i); /* cannot fail: validated above */

                if (cp < 0)
                        return CHORUS_ERR_INVALID_UTF8;
                if (is_control((unsigned long)cp)) {
                        chorus_seterr(why, why_size, "control character U+%04lX at byte %zu",
                                      (unsigned long)cp, at);
                        return CHORUS_ERR_INVALID_NAME;
                }
                if (is_space((unsigned long)cp)) {
                        chorus_seterr(why, why_size, "whitespace U+%04lX at byte %zu",
                                      (unsigned long)cp, at);
                        return CHORUS_ERR_INVALID_NAME;
                }
                if (cp == '|') {
                        chorus_seterr(why, why_size, "'|' at byte %zu", at);
                        return CHORUS_ERR_INVALID_NAME;
                }
        }
        /* Last, so that reserved_name means "well-formed, but in the
         * reserved namespace": a name that also breaks a rule above is
         * invalid_name, whatever its prefix. */
        if (len >= 2 && name[0] == '_' && name[1] == '_') {
                chorus_seterr(why, why_size, "names beginning with \"__\" are reserved");
                return CHORUS_ERR_RESERVED_NAME;
        }
        return CHORUS_OK;
}

const char chorus_name_rules[] = "(1 to 128 bytes of UTF-8 without whitespace, control "
                                 "characters or '|', not starting with \"__\")";

chorus_err_t chorus_name_check(const char *name, size_t len) {
        return chorus_codec_name_explain(name, len, NULL, 0);
}

/*
 * Files embedded into the binary at build time (cmake/embed.cmake):
 * the .avsc files of schemas/ and the .lua files of src/state/, by base name.
 */
#ifndef CHORUS_EMBEDDED_H
#define CHORUS_EMBEDDED_H

/** @returns the NUL-terminated content of embedded file @p name
 *           ("prediction.avsc", "chorus.lua"), or NULL if there is none. */
const char *chorus_embedded_get(const char *name);

#endif /* CHORUS_EMBEDDED_H */

/*
 * Names of the forecast fallbacks (SPEC §3 EnsembleForecast.fallback).
 *
 * The strings are a wire contract, written into the Avro field: never rename
 * one. NONE maps to NULL because the field is then null, not a string.
 */
#include <stddef.h>

#include "chorus/record.h"

const char *chorus_fallback_name(chorus_fallback_t f) {
        switch (f) {
        case CHORUS_FALLBACK_NONE:
                return NULL;
        case CHORUS_FALLBACK_COLD_START:
                return "cold_start";
        case CHORUS_FALLBACK_OVERFITTING:
                return "overfitting";
        case CHORUS_FALLBACK_ROLLBACK:
                return "rollback";
        }
        return NULL; /* not a fallback: same as none, the field stays null */
}

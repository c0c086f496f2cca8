/*
 * parse.h — strict parsers for numbers, booleans and addresses typed by people.
 *
 * Nothing is coerced: "12x", " 12", "" and values out of range are refused
 * (no atoi-style silent zero). Each parser reads a whole NUL-terminated string,
 * writes its output only on success and returns 0 or a negative MLX_E* code
 * with a sentence in err that quotes the input and says what would be valid.
 *
 * Thread safety: all functions are safe.
 */
#ifndef MLX_COMMON_PARSE_H
#define MLX_COMMON_PARSE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/err.h"

/* Decimal integer with an optional leading '-'. */
int mlx_parse_int64(const char *text, int64_t *out, mlx_err *err);

/* A positive duration: a whole number and a unit, ms, s, m, h or d
 * ("90s", "24h", "7d"); result in milliseconds. */
int mlx_parse_duration_ms(const char *text, int64_t *out, mlx_err *err);

/* A decimal number: [-]digits[.digits][e[+-]digits] (also ".5"); no hex,
 * no inf or nan, nothing around it. */
int mlx_parse_double(const char *text, double *out, mlx_err *err);

/* A size in bytes: a whole number, optionally with a binary unit K, M, G or
 * T (also written KB/KiB, …; case-insensitive): "500M", "40GiB", "1024". */
int mlx_parse_bytes(const char *text, uint64_t *out, mlx_err *err);

/* true/false, yes/no, on/off, 1/0 (case-insensitive). */
int mlx_parse_bool(const char *text, bool *out, mlx_err *err);

/* "HOST:PORT" or "[IPV6]:PORT" with 1 <= PORT <= 65535; host copied to host
 * (size host_size, without brackets). */
int mlx_parse_hostport(const char *text, char *host, size_t host_size, int *port,
                       mlx_err *err);

/* An NNG stream address we can dial or listen on: tcp://HOST:PORT or
 * tls+tcp://HOST:PORT. On success the host and port may be extracted. */
int mlx_parse_nng_url(const char *text, char *host, size_t host_size, int *port,
                      mlx_err *err);

/* True when s is valid UTF-8 of at most max bytes with no control
 * characters: safe to log, to show in a table and to put in JSON. */
bool mlx_text_is_clean(const char *s, size_t max);

/* The length of the longest prefix of s (a NUL-terminated string) of at
 * most max bytes that does not end inside a UTF-8 sequence: where to cut
 * text that is quoted or truncated, so the cut never breaks a character. */
size_t mlx_utf8_prefix(const char *s, size_t max);

#endif

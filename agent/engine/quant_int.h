/*
 * quant_int.h — what the block-format files share (quant.c, quant_k.c);
 * not for other modules, which use quant.h.
 */
#ifndef MLX_AGENT_ENGINE_QUANT_INT_H
#define MLX_AGENT_ENGINE_QUANT_INT_H

#include <stdint.h>

#include "agent/engine/quant.h"

/* A little-endian half at p, as float. */
static inline float quant_load_f16(const uint8_t *p)
{
    return quant_f16_to_f32((uint16_t)(p[0] | p[1] << 8));
}

/* The k-quant super-block formats (quant_k.c). */
extern const quant_ops quant_ops_q4_k;
extern const quant_ops quant_ops_q6_k;

#endif

/* suite.c — the fixed benchmark suite's prompts and figures (see suite.h). */
#include "common/suite.h"

#include <stdlib.h>

/*
 * The suite. History compares runs of it over time, and the fleet's bench
 * compares nodes, so these texts are part of what a figure means: change
 * them and old runs no longer compare. They differ in length (a few tokens to a few
 * hundred) and kind, because prompt length moves ttft and the kind of answer moves how
 * soon a real model stops.
 */
const mlx_suite_prompt mlx_suite_prompts[MLX_SUITE_PROMPTS] = {
    /* The shortest: ttft is nearly all scheduling and the chat template. */
    {"question", "What is the capital of France?"},
    /* A long instruction with constraints, as agents and tools send. */
    {"instruction",
     "You are helping a small team of eight people move to a new office next month. "
     "Write a checklist for the move. Group the items under the headings Before, "
     "Moving day and After. Include the internet connection, the printers, keys and "
     "badges, telling customers the new address, and who to call if something breaks. "
     "Keep each item to one line and put the most urgent items first in each group."},
    /* Code: many short tokens, punctuation and indentation. */
    {"code",
     "Write a C function that reverses a singly linked list in place and returns the "
     "new head. Then explain in two sentences why it runs in linear time."},
    /* A list: a structured answer of many short lines. */
    {"list", "List ten fruits that grow in tropical climates, one per line."},
    /* A story opening to continue: free-running prose. */
    {"story",
     "Continue this story: Once upon a time, in a village at the edge of a great "
     "forest, there lived a girl who could hear what the trees were saying."},
    /* The longest prompt and a short answer: prompt speed dominates. */
    {"summary",
     "Summarise the following in one sentence. The city council met on Tuesday to "
     "discuss the new bicycle lanes planned for the centre. Supporters said the lanes "
     "would make cycling safer and reduce traffic, pointing to other cities where the "
     "number of people cycling to work doubled within two years. Shop owners on the "
     "main street worried that removing parking spaces would keep customers away, and "
     "asked for a trial period first. After two hours the council agreed to build the "
     "lanes on two streets this summer, count cyclists and shoppers for six months, and "
     "decide on the rest of the plan in the spring."},
    /* Translation: the answer's length follows the prompt's. */
    {"translation",
     "Translate into French: The train to the airport leaves every twenty minutes "
     "from platform four."},
    /* Arithmetic with steps. */
    {"math",
     "A train leaves at 3:15 pm and travels 240 km at 80 km/h. When does it arrive? "
     "Show your steps."},
    /* Everyday writing of medium length. */
    {"email",
     "Write a short, polite email declining an invitation to a meeting on Thursday "
     "afternoon, and suggest two other times."},
    /* An explanation for a given audience. */
    {"explanation", "Explain to a ten-year-old why the sky is blue."},
};

double mlx_suite_rate(uint64_t tokens, double ms)
{
    return ms > 0 ? (double)tokens * 1000.0 / ms : 0;
}

uint32_t mlx_suite_after_first(uint32_t completion_tokens)
{
    return completion_tokens > 0 ? completion_tokens - 1 : 0;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

void mlx_suite_sort(double *values, size_t n)
{
    qsort(values, n, sizeof values[0], cmp_double);
}

double mlx_suite_percentile(const double *sorted, size_t n, unsigned pct)
{
    size_t rank = (pct * n + 99) / 100;
    return sorted[rank > 0 ? rank - 1 : 0];
}

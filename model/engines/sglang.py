"""SGLang (v0.4-v0.5 runtime): scheduling defaults and how its scheduler works.

Scheduler (python/sglang/srt/managers/scheduler.py, `get_next_batch_to_run`): when requests wait and memory
allows, a prefill batch is built first (`get_new_batch_prefill`, PrefillAdder) and run apart from the decode
batch, so running decodes pause for that iteration; otherwise the decode batch runs. A prefill batch holds up
to chunked_prefill_size new tokens (a longer prompt is chunked and finished in later prefill batches).
With --enable-mixed-chunk the running decodes ride along the prefill batch instead of pausing. Admission
reserves KV for the prompt plus new_token_ratio x max_new_tokens of each running request
(SGLANG_INIT_NEW_TOKEN_RATIO 0.7 x schedule_conservativeness 1.0, decaying toward a floor); when decodes run
out of memory requests are retracted and recomputed. The radix cache shares prompt prefixes (on by default).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class SGLangDefaults:
    name: str = "sglang"
    # --max-running-requests: unset means bounded by the KV pool; ridgeplan's policy keeps 1024 as a cap
    max_running_requests: int = 1024
    # --chunked-prefill-size 8192 (ServerArgs default for GPUs with large memory; 2048-4096 on small ones)
    chunked_prefill_size: int = 8192
    page_size: int = 1  # --page-size 1 (token-granular KV pages)
    mem_fraction_static: float = 0.88  # --mem-fraction-static, ~0.88 on 80 GB-class GPUs (set from GPU memory)
    memory_mode: str = "fraction_of_total"
    schedule_policy: str = "fcfs"  # --schedule-policy (fcfs in current releases; lpm with the radix cache)
    enable_mixed_chunk: bool = False  # --enable-mixed-chunk off: prefill batches pause decodes
    prefill_first: bool = True  # get_next_batch_to_run prefers a new prefill batch over decoding
    init_new_token_ratio: float = 0.7  # SGLANG_INIT_NEW_TOKEN_RATIO (schedule_batch / global_config)
    admission: str = "current"
    radix_cache: bool = True  # --disable-radix-cache off: prefix sharing on
    source: str = "SGLang v0.4-v0.5 (python/sglang/srt/server_args.py, managers/scheduler.py)"


SGLANG = SGLangDefaults()

"""Continuous batching of Qwen3-TTS Base in-context clone prompts, with one random stream per line.

mlx-audio 0.6.2 ships a step-wise batch session for preset voices (`qwen3_tts/continuous_batching.py`) and a batch
ICL path that needs ONE shared reference. This session extends the idea to clone prompts: every row carries its own
reference prompt, so lines of different voices share a batch, and when a row finishes the next line joins at the
next step (longest lines first).

Prompt pieces come from mlx-audio's own model — its tokenizer, text embeddings and projection, codec embeddings,
speech tokenizer decoder — arranged exactly as `Model._prepare_icl_generation_inputs` arranges them. What belongs
to a voice (the reference transcript's embeddings, the reference codes' embeddings, the x-vector in the codec
prefix) is built ONCE per (voice, language) per process (`PromptBuilder.voice`); a line adds only its own text.

A row's prompt (`PromptBuilder.row`):

    [instruct prefix?]  <|im_start|>user\\n{instruct}<|im_end|>\\n        optional, per row ([delivery] instruct/both)
    role                <|im_start|>assistant\\n
    codec prefix        think/nothink, language, x-vector, pad … over tts pad, then tts bos
    ICL text            ref transcript + line text + tts eos              over codec pad
    ICL codes           codec bos + reference codes                       over tts pad

Sampling streams: each row draws from `mx.random.key(seed)` of its own line, split once per decode step, and
samples with Gumbel-max on its own noise (the talker token and the 15 code-predictor tokens of a step). A line's
tokens therefore do not depend on its batch neighbours, the batch size or the order of the run — up to batched
arithmetic (padded attention, GEMM shapes), which tests measure. A retake uses the stream of seed+1, seed+2, ….

Prefill runs per row (its own causal forward over its prompt); decode steps run batched over a `BatchKVCache`
(mlx-audio's, from mlx-lm) that rows join (`extend`) and leave (`filter`) between steps.

Stopping (`run(..., should_stop)`, e.g. Ctrl-C): asked before each round (one decode step); once True the session
returns at once — finished lines were handed out already, rows in flight are dropped with their KV cache (no
outcome, nothing decoded or stored), lines not started never start.

Call everything here on the MLX thread (`pipeline.mlx_runtime.on_mlx_thread`).
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

import numpy as np

from ..audio import Audio
from .base import RenderJob, RenderOutcome
from .session import OnOutcome, SessionRow, SessionStats, ShouldStop, never

REPETITION_CONTEXT = 64  # tokens of a row's history its repetition penalty looks at (mlx-audio's default)
ICL_MIN_REPETITION_PENALTY = 1.5  # mlx-audio forces ≥ 1.5 on ICL generation


@dataclass(frozen=True)
class Sampling:
    temperature: float = 0.9
    top_k: int = 50
    top_p: float = 1.0
    repetition_penalty: float = 1.05


@dataclass(frozen=True)
class VoicePrompt:
    """The parts of an ICL prompt that belong to one voice in one language (built once per process)."""

    prefix: Any  # [1, P, H]: role + codec prefix over tts pad/bos
    ref_text: Any  # [1, Lr, H]: reference transcript embeddings over codec pad
    ref_codec: Any  # [1, Lc, H]: codec bos + reference codes over tts pad
    ref_codes: Any  # [1, 16, T] int32, decoded in front of each line for context, then cut


class PromptBuilder:
    """ICL prompts from mlx-audio's model pieces; voice parts memoised on a caller-given key."""

    def __init__(self, model):
        import mlx.core as mx

        self.model = model
        self.config = model.config.talker_config
        talker = model.talker
        self._text = lambda ids: talker.text_projection(talker.get_text_embeddings()(ids))
        self._codec = talker.get_input_embeddings()
        special = self._text(mx.array([[model.config.tts_bos_token_id, model.config.tts_eos_token_id,
                                        model.config.tts_pad_token_id]]))
        self.tts_bos, self.tts_eos, self.tts_pad = special[:, 0:1], special[:, 1:2], special[:, 2:3]
        self.codec_pad = self._codec(mx.array([[self.config.codec_pad_id]]))
        role_ids = self._ids("<|im_start|>assistant\n")[:, :3]
        self.role = self._text(role_ids)
        self.eos_over_pad = self.tts_eos + self.codec_pad
        mx.eval(self.tts_bos, self.tts_eos, self.tts_pad, self.codec_pad, self.role, self.eos_over_pad)
        self._voices: dict[Any, VoicePrompt] = {}

    def _ids(self, text: str):
        import mlx.core as mx

        return mx.array(self.model.tokenizer.encode(text))[None, :]

    def text_ids(self, text: str):
        """The line's text tokens as mlx-audio slices them from its chat template."""
        return self._ids(f"<|im_start|>assistant\n{text}<|im_end|>\n<|im_start|>assistant\n")[:, 3:-5]

    def has(self, key) -> bool:
        return key in self._voices

    def voice(self, key, ref_codes: np.ndarray, x_vector: np.ndarray | None, ref_text: str,
              language: str) -> VoicePrompt:
        """The voice's prompt parts; built once per `key` (e.g. (lock digest, model, language))."""
        if key not in self._voices:
            self._voices[key] = self._build_voice(ref_codes, x_vector, ref_text, language)
        return self._voices[key]

    def _build_voice(self, ref_codes, x_vector, ref_text, language) -> VoicePrompt:
        import mlx.core as mx

        c = self.config
        codes = mx.array(np.asarray(ref_codes, dtype=np.int32))[None]  # [1, 16, T]
        ref_ids = self._ids(f"<|im_start|>assistant\n{ref_text}<|im_end|>\n")[:, 3:-2]
        ref_text_embed = self._text(ref_ids) + self.codec_pad
        codec = self._codec(codes[:, 0, :])
        for i in range(c.num_code_groups - 1):
            codec = codec + self.model.talker.code_predictor.codec_embedding[i](codes[:, i + 1, :])
        codec = mx.concatenate([self._codec(mx.array([[c.codec_bos_id]])), codec], axis=1)
        ref_codec = codec + self.tts_pad
        lang = (language or "auto").lower()
        lang_id = (c.codec_language_id or {}).get(lang) if lang != "auto" else None
        think = ([c.codec_nothink_id, c.codec_think_bos_id, c.codec_think_eos_id] if lang_id is None else
                 [c.codec_think_id, c.codec_think_bos_id, lang_id, c.codec_think_eos_id])
        parts = [self._codec(mx.array([think]))]
        if x_vector is not None and self.model.speaker_encoder is not None:
            parts.append(mx.array(np.asarray(x_vector, np.float32)).astype(parts[0].dtype).reshape(1, 1, -1))
        parts.append(self._codec(mx.array([[c.codec_pad_id, c.codec_bos_id]])))
        codec_prefix = mx.concatenate(parts, axis=1)
        pads = mx.broadcast_to(self.tts_pad, (1, codec_prefix.shape[1] - 2, self.tts_pad.shape[-1]))
        text_side = mx.concatenate([pads, self.tts_bos], axis=1)
        prefix = mx.concatenate([self.role, text_side + codec_prefix[:, :-1, :]], axis=1)
        mx.eval(prefix, ref_text_embed, ref_codec, codes)
        return VoicePrompt(prefix=prefix, ref_text=ref_text_embed, ref_codec=ref_codec, ref_codes=codes)

    def instruct(self, instruct: str):
        """The optional per-row instruct prefix, as mlx-audio builds it for instruct models."""
        return self._text(self._ids(f"<|im_start|>user\n{instruct}<|im_end|>\n"))

    def row(self, voice: VoicePrompt, text: str, instruct: str | None = None):
        """The full prefill embeddings [1, L, H] of one line in one voice."""
        import mlx.core as mx

        parts = [self.instruct(instruct)] if instruct else []
        line = self._text(self.text_ids(text)) + self.codec_pad
        parts += [voice.prefix, voice.ref_text, line, self.eos_over_pad, voice.ref_codec]
        return mx.concatenate(parts, axis=1)


# ------------------------------------------------------------------------------------------------ sampling


def sample_rows(logits, noise, s: Sampling, *, suppress=None, history: Sequence[Sequence[int]] | None = None,
                penalty: float = 1.0):
    """One token per row of `logits` [B, V] with per-row Gumbel `noise` [B, V]: suppression, repetition penalty
    over each row's own history, temperature, top-k, top-p — all row-wise — then argmax(logits + noise)."""
    import mlx.core as mx
    from mlx_audio.lm.sample_utils import apply_top_k
    from mlx_audio.tts.models.qwen3_tts.qwen3_tts import _apply_probability_filters

    logits = logits.astype(mx.float32)
    if suppress is not None:
        logits = mx.where(suppress, mx.array(-mx.inf, logits.dtype), logits)
    if history is not None and penalty != 1.0 and any(history):
        mask = np.zeros(logits.shape, dtype=bool)
        for b, tokens in enumerate(history):
            recent = [t for t in set(tokens[-REPETITION_CONTEXT:]) if t < logits.shape[-1]]
            mask[b, recent] = True
        mask = mx.array(mask)
        logits = mx.where(mask, mx.where(logits < 0, logits * penalty, logits / penalty), logits)
    if s.temperature <= 0:
        return mx.argmax(logits, axis=-1)
    if s.temperature != 1.0:
        logits = logits / s.temperature
    if 0 < s.top_k < logits.shape[-1]:
        logits = apply_top_k(logits, s.top_k)
    logits = _apply_probability_filters(logits, s.top_p, 0.0)
    return mx.argmax(logits + noise, axis=-1)


# ------------------------------------------------------------------------------------------------ the session


@dataclass
class _Row:
    """One line in flight."""

    index: int  # position in the run (outcome order is by finish time; this ties back to the row)
    row: SessionRow
    voice: VoicePrompt
    cap: int
    seed: int
    retakes: int = 0
    problems: list = field(default_factory=list)
    key: Any = None  # the row's random key, split once per step
    pos: int = 0  # position id of the next input
    next_embed: Any = None  # [1, 1, H]
    tokens: list = field(default_factory=list)  # first-codebook ids (repetition penalty)
    codes: list = field(default_factory=list)  # np [16] per frame
    done: bool = False


Judge = Callable[[Audio | None, int, int], str | None]


class Qwen3BatchSession:
    """Continuous (or, for comparison, static) batching of clone-prompt rows on one loaded Base model.

    `prompt_for(row) -> VoicePrompt` (from `builder.voice`); `cap_for(job) -> int` frames; `judge(audio, tokens, cap)` says
    why a take is unusable (None: keep); a row whose take is unusable retakes with seed+1 … up to `max_retakes`.
    `policy="static"`: a batch of `batch_size` rows runs until its longest row finishes (finished rows stay in
    the batch, idle) and only then do the next rows start — today's batch_generate behaviour, for benches.
    """

    def __init__(self, builder: PromptBuilder, batch_size: int, sampling: Sampling, *, prompt_for: Callable,
                 cap_for: Callable, judge: Judge, max_retakes: int, policy: str = "continuous",
                 instruct_for: Callable[[RenderJob], str | None] = lambda job: None):
        import mlx.core as mx

        if policy not in ("continuous", "static"):
            raise ValueError(f"policy {policy!r}: use 'continuous' or 'static'")
        self.builder = builder
        self.model = model = builder.model
        self.batch_size = max(1, int(batch_size))
        self.sampling = sampling
        self.penalty = max(sampling.repetition_penalty, ICL_MIN_REPETITION_PENALTY)
        self.prompt_for, self.cap_for, self.judge = prompt_for, cap_for, judge
        self.max_retakes = max_retakes
        self.instruct_for = instruct_for  # the instruct prefixed to a row's prompt (docs/delivery.md), or None
        self.policy = policy
        self.stats = SessionStats(batch_size=self.batch_size)
        c = model.config.talker_config
        self.groups = c.num_code_groups
        self.vocab = c.vocab_size
        self.code_vocab = model.talker.code_predictor.config.vocab_size
        self.eos = c.codec_eos_token_id  # read per session: tests and benches may disable end-of-speech
        suppress = np.zeros((1, self.vocab), dtype=bool)
        suppress[0, max(0, self.vocab - 1024):] = True
        if 0 <= self.eos < self.vocab:
            suppress[0, self.eos] = False
        self.suppress = mx.array(suppress)

    # -- public --
    def run(self, rows: Sequence[SessionRow], on_outcome: OnOutcome, should_stop: ShouldStop = never) -> None:
        import mlx.core as mx

        pending = self._prepare(rows, on_outcome, should_stop)
        active: list[_Row] = []
        cache = None
        while (pending or active) and not should_stop():  # stopped: rows in flight dropped, none started
            # One round: the rows in flight take a batched decode step, then free slots take new lines (each
            # prefilled alone); every row of the round — new ones with their first frame — samples together.
            logits, hidden = [], []
            if active:
                step_logits, step_hidden = self._forward(active, cache)
                logits.append(step_logits)
                hidden.append(step_hidden)
            joined: list[_Row] = []
            if self.policy == "continuous" or not active:
                while pending and len(active) + len(joined) < self.batch_size:
                    row = pending.popleft()
                    row_cache, row_logits, row_hidden = self._prefill(row)
                    cache = self._join(cache, row_cache)
                    joined.append(row)
                    logits.append(row_logits)
                    hidden.append(row_hidden)
            active = active + joined
            if not active:
                continue
            self._count_round(active)
            self._sample(active, mx.concatenate(logits, axis=0), mx.concatenate(hidden, axis=0))
            finished = [r for r in active if r.done]
            if not finished or (self.policy == "static" and len(finished) < len(active)):
                continue  # a static batch keeps its finished rows (idle) until its longest row ends
            keep = [i for i, r in enumerate(active) if not r.done]
            if keep:
                for layer in cache:
                    layer.filter(mx.array(keep, dtype=mx.int32))
            else:
                cache = None
            active = [active[i] for i in keep]
            for r in finished:
                self._finish(r, pending, on_outcome)

    # -- internals --
    def _prepare(self, rows: Sequence[SessionRow], on_outcome: OnOutcome, should_stop: ShouldStop) -> deque:
        """The rows as queued lines with their voice prompts (longest first when continuous); a voice that cannot
        be prepared fails its lines. Stops preparing (an empty queue) once `should_stop()` is True."""
        pending: deque[_Row] = deque()
        for i, row in enumerate(rows):
            if should_stop():
                return deque()
            try:
                voice = self.prompt_for(row)
            except Exception as e:  # noqa: BLE001 — a voice that cannot be prepared fails its lines only
                self._emit(on_outcome, RenderOutcome(row.job.key, None, f"engine error: {type(e).__name__}: {e}",
                                                     seed=row.job.seed))
                continue
            pending.append(_Row(i, row, voice, self.cap_for(row.job), row.job.seed))
        if self.policy == "continuous":  # longest lines first: short ones fill the tail
            pending = deque(sorted(pending, key=lambda r: (-r.cap, r.index)))
        return pending

    def _emit(self, on_outcome: OnOutcome, outcome: RenderOutcome) -> None:
        self.stats.lines += 1
        self.stats.tokens += outcome.tokens
        on_outcome(outcome)

    def _noise(self, row: _Row):
        import mlx.core as mx

        row.key, sub = mx.random.split(row.key)
        return mx.random.gumbel(shape=(self.vocab + (self.groups - 1) * self.code_vocab,), key=sub)

    def _prefill(self, row: _Row):
        """The row's prompt through the talker alone (its own KV cache); returns (cache, last logits [1, V],
        last hidden [1, 1, H]) — its first frame is sampled with the round."""
        import mlx.core as mx

        self.stats.prefills += 1
        row.key = mx.random.key(int(row.seed) & 0xFFFFFFFFFFFFFFFF)
        row.tokens, row.codes, row.done = [], [], False
        embeds = self._row_embeds(row)
        cache = self.model.talker.make_cache()
        logits, hidden = self.model.talker(embeds, cache=cache)
        row.pos = embeds.shape[1]
        return cache, logits[:, -1, :], hidden[:, -1:, :]

    def _row_embeds(self, row: _Row):
        """The row's prefill: its line in its voice, with its instruct turn in front when `instruct_for` gives one."""
        job = row.row.job
        return self.builder.row(row.voice, job.text, self.instruct_for(job))

    def _join(self, cache, row_cache):
        from mlx_audio.lm.models.cache import BatchKVCache

        joined = [BatchKVCache.merge([layer]) for layer in row_cache]
        if cache is None:
            return joined
        for layer, new in zip(cache, joined):
            layer.extend(new)
        return cache

    def _forward(self, active: list[_Row], cache):
        """One batched decode step of the rows in flight: (last logits [B, V], last hidden [B, 1, H])."""
        import mlx.core as mx

        x = mx.concatenate([r.next_embed for r in active], axis=0)
        pos = mx.array([[r.pos] for r in active], dtype=mx.int32)
        length = cache[0].size() + 1
        mask = (mx.arange(length)[None, :] >= cache[0].left_padding[:, None])[:, None, None, :]
        logits, hidden = self.model.talker(x, position_ids=mx.stack([pos, pos, pos]), mask=mask, cache=cache)
        for r in active:
            r.pos += 1
        return logits[:, -1, :], hidden[:, -1:, :]

    def _count_round(self, rows: list[_Row]) -> None:
        self.stats.steps += 1
        self.stats.busy_rows += sum(1 for r in rows if not r.done)
        self.stats.capacity += max(len(rows), self.batch_size)

    def _sample(self, rows: list[_Row], logits, hidden) -> None:
        """The talker token and the 15 code-predictor tokens of one step, each row on its own noise."""
        import mlx.core as mx

        s = self.sampling
        noise = mx.stack([self._noise(r) for r in rows])  # [B, V + 15 Vc]
        first = sample_rows(logits, noise[:, :self.vocab], s, suppress=self.suppress,
                            history=[r.tokens for r in rows], penalty=self.penalty)[:, None]  # [B, 1]
        predictor = self.model.talker.code_predictor
        code_cache = predictor.make_cache()
        tokens = [first]
        for g in range(self.groups - 1):
            if g == 0:
                step_in = mx.concatenate([hidden, self.model.talker.get_input_embeddings()(first)], axis=1)
            else:
                step_in = predictor.codec_embedding[g - 1](tokens[-1])
            code_logits, code_cache, _ = predictor(step_in, cache=code_cache, generation_step=g)
            start = self.vocab + g * self.code_vocab
            tokens.append(sample_rows(code_logits[:, -1, :], noise[:, start:start + self.code_vocab], s)[:, None])
        codes = mx.concatenate(tokens, axis=1)  # [B, 16]
        next_embed = self.builder.tts_pad + self.model._codec_embeds_for_tokens(tokens)  # [B, 1, H]
        mx.eval(codes, next_embed)
        codes_np = np.array(codes)
        for b, r in enumerate(rows):
            r.next_embed = next_embed[b:b + 1]
            if r.done:
                continue
            token = int(codes_np[b, 0])
            if token == self.eos:
                r.done = True
                continue
            r.tokens.append(token)
            r.codes.append(codes_np[b])
            if len(r.codes) >= r.cap:
                r.done = True

    def _decode(self, row: _Row) -> Audio | None:
        import mlx.core as mx

        if not row.codes:
            return None
        frames = mx.array(np.stack(row.codes).astype(np.int32))  # [T, 16]
        audio = self.model._decode_icl_generated_codes([frames[t:t + 1] for t in range(frames.shape[0])],
                                                       row.voice.ref_codes)
        mx.eval(audio)
        return Audio(np.array(audio, dtype=np.float32).reshape(-1), self.model.sample_rate)

    def _finish(self, row: _Row, pending: deque, on_outcome: OnOutcome) -> None:
        """Judge the row's take: hand out its outcome, or queue its retake (seed+1) at the front."""
        job: RenderJob = row.row.job
        tokens = len(row.codes)
        try:
            audio = self._decode(row)
            problem = self.judge(audio, tokens, row.cap)
        except Exception as e:  # noqa: BLE001
            audio, problem = None, f"engine error: {type(e).__name__}: {e}"
        row.codes = []
        if problem is None:
            self._emit(on_outcome, RenderOutcome(job.key, audio, tokens=tokens, retakes=row.retakes, seed=row.seed))
            return
        row.problems.append(problem)
        if row.retakes >= self.max_retakes:
            reason = problem if len(set(row.problems)) == 1 else "; ".join(dict.fromkeys(row.problems))
            self._emit(on_outcome, RenderOutcome(
                job.key, None, tokens=tokens, retakes=row.retakes, seed=row.seed,
                error=f"{reason} (after {row.retakes + 1} takes, seeds {job.seed}..{row.seed})"))
            return
        row.retakes += 1
        row.seed = job.seed + row.retakes
        pending.appendleft(row)


# ------------------------------------------------------------------------------------------------ engine glue


class Qwen3RenderSession:
    """The qwen3 engine's `RenderSession`: clone rows of any voices through one `Qwen3BatchSession` (continuous
    batching, per-line streams); preset rows (CustomVoice) one by one with their own seeds, as before."""

    def __init__(self, engine, batch_size: int, policy: str = "continuous"):
        self.engine = engine
        self.batch_size = max(1, int(batch_size))
        self.policy = policy
        self.stats = SessionStats(batch_size=self.batch_size)

    def run(self, rows: Sequence[SessionRow], on_outcome: OnOutcome, should_stop: ShouldStop = never) -> None:
        from ..languages import language_name
        from ..mlx_runtime import on_mlx_thread

        rows = list(rows)
        for row in rows:
            self.engine.check_lock(row.lock)
            language_name(row.job.language)  # a bad language is a settings error for the whole run
        on_mlx_thread(self._run, rows, on_outcome, should_stop)

    def _run(self, rows: list[SessionRow], on_outcome: OnOutcome, should_stop: ShouldStop) -> None:
        clone = [r for r in rows if r.lock.kind == "clone"]
        if clone:
            session = self.batch_session()
            session.run(clone, on_outcome, should_stop)
            self.stats.add(session.stats)
        for row in rows:
            if should_stop():
                return
            if row.lock.kind != "clone":
                outcome = self.engine.render_preset(row.lock, row.job)
                self.stats.steps += max(1, outcome.tokens)  # CustomVoice decodes one row at a time
                self.stats.busy_rows += max(1, outcome.tokens)
                self.stats.capacity += max(1, outcome.tokens) * self.batch_size
                self.stats.lines += 1
                self.stats.tokens += outcome.tokens
                on_outcome(outcome)

    def batch_session(self) -> Qwen3BatchSession:
        """A fresh step-wise session on the current Base model (MLX thread)."""
        from ..languages import language_name
        from .qwen3 import _judge

        engine = self.engine
        builder = engine.prompt_builder()
        r = engine.options

        digests: dict[int, str] = {}  # a lock's digest hashes its arrays: once per lock object

        def prompt_for(row: SessionRow) -> VoicePrompt:
            lang = language_name(row.job.language)
            digest = digests.get(id(row.lock)) or digests.setdefault(id(row.lock), row.lock.digest())
            key = (digest, engine.base_id, lang)
            if not builder.has(key):
                codes, x_vector = engine.clone_prompt(row.lock)
                return builder.voice(key, codes, x_vector, row.lock.ref_text, lang)
            return builder.voice(key, None, None, "", lang)

        return Qwen3BatchSession(
            builder, self.batch_size, Sampling(r.temperature, r.top_k, r.top_p, r.repetition_penalty),
            prompt_for=prompt_for, cap_for=lambda job: engine._cap(job.text),
            judge=lambda audio, tokens, cap: _judge(audio, tokens, cap, r.silence_rms),
            max_retakes=r.max_retakes, policy=self.policy, instruct_for=engine.prompt_instruct)

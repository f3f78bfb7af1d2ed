"""Fill-in-the-middle templates, as data, and their detection from a model's vocabulary.

A template names the special tokens a model family was trained with; ``detect_template`` picks
the first template whose required tokens all exist in the vocabulary (by their raw text), so any
GGUF works without configuration. Models without FIM tokens (the embedded Gemma-3-270M among
them) get ``None``: the prompt is prefix-only and the suffix is used to stop and filter.

Layout choice for KV reuse while typing: PSM templates put the text typed on the cursor line
*after* the middle marker (``<pre>{prefix up to the line start}<suf>{suffix}<mid>{line so far}``),
so a keystroke appends a token instead of invalidating everything after the prefix; SPM templates
(suffix first) are append-only by construction.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

__all__ = ["FIM_TEMPLATES", "FimTemplate", "ResolvedTemplate", "detect_template", "template_by_name"]


@dataclass(frozen=True)
class FimTemplate:
    """One model family's infilling format (token texts as they appear in the vocabulary)."""

    name: str
    prefix: str
    suffix: str
    middle: str | None  # None for suffix-first formats that end with the prefix
    order: str = "psm"  # "psm": prefix, suffix, middle; "spm": suffix, prefix
    stop: tuple[str, ...] = ()
    file_sep: str | None = None  # repo-level file separator, when the family has one
    repo_name: str | None = None
    requires: tuple[str, ...] = ()  # extra tokens that must exist to pick this template
    families: str = ""

    def __post_init__(self) -> None:
        if self.order not in ("psm", "spm"):
            raise ValueError(f"order: {self.order!r} is not 'psm' or 'spm'")
        if self.order == "psm" and not self.middle:
            raise ValueError(f"{self.name}: a PSM template needs a middle token")

    def required_tokens(self) -> tuple[str, ...]:
        toks = [self.prefix, self.suffix, *self.requires]
        if self.middle:
            toks.append(self.middle)
        return tuple(toks)


FIM_TEMPLATES: tuple[FimTemplate, ...] = (
    FimTemplate(
        "qwen", "<|fim_prefix|>", "<|fim_suffix|>", "<|fim_middle|>",
        stop=("<|endoftext|>", "<|fim_pad|>", "<|file_sep|>", "<|repo_name|>", "<|im_end|>"),
        file_sep="<|file_sep|>", repo_name="<|repo_name|>", requires=("<|file_sep|>",),
        families="Qwen2.5-Coder, Qwen3-Coder",
    ),
    FimTemplate(
        "codegemma", "<|fim_prefix|>", "<|fim_suffix|>", "<|fim_middle|>",
        stop=("<|file_separator|>", "<end_of_turn>", "<eos>"),
        file_sep="<|file_separator|>", requires=("<|file_separator|>",),
        families="CodeGemma",
    ),
    FimTemplate(
        "fim-pipes", "<|fim_prefix|>", "<|fim_suffix|>", "<|fim_middle|>",
        stop=("<|endoftext|>", "<|fim_pad|>", "<|eot_id|>"),
        families="other models with <|fim_*|> tokens",
    ),
    FimTemplate(
        "starcoder2", "<fim_prefix>", "<fim_suffix>", "<fim_middle>",
        stop=("<|endoftext|>", "<fim_pad>", "<file_sep>"),
        file_sep="<file_sep>", repo_name="<repo_name>", requires=("<file_sep>",),
        families="StarCoder2",
    ),
    FimTemplate(
        "starcoder", "<fim_prefix>", "<fim_suffix>", "<fim_middle>",
        stop=("<|endoftext|>", "<fim_pad>"),
        families="StarCoder, SantaCoder, StableCode, Refact",
    ),
    FimTemplate(
        "deepseek", "<｜fim▁begin｜>", "<｜fim▁hole｜>", "<｜fim▁end｜>",
        stop=("<｜end▁of▁sentence｜>", "<|EOT|>"),
        families="DeepSeek-Coder",
    ),
    FimTemplate(
        "codellama", "▁<PRE>", "▁<SUF>", "▁<MID>",
        stop=("▁<EOT>",),
        families="CodeLlama",
    ),
    FimTemplate(
        "codestral", "[PREFIX]", "[SUFFIX]", None, order="spm",
        stop=("</s>",),
        families="Codestral (suffix first)",
    ),
)


@dataclass(frozen=True)
class ResolvedTemplate:
    """A template bound to one model's token ids."""

    template: FimTemplate
    prefix_id: int
    suffix_id: int
    middle_id: int | None
    stop_ids: frozenset[int] = field(default_factory=frozenset)
    file_sep_id: int | None = None
    repo_name_id: int | None = None

    @property
    def name(self) -> str:
        return self.template.name

    @property
    def control_ids(self) -> frozenset[int]:
        ids = {self.prefix_id, self.suffix_id, *self.stop_ids}
        if self.middle_id is not None:
            ids.add(self.middle_id)
        for extra in (self.file_sep_id, self.repo_name_id):
            if extra is not None:
                ids.add(extra)
        return frozenset(ids)


def template_by_name(name: str) -> FimTemplate:
    for t in FIM_TEMPLATES:
        if t.name == name:
            return t
    known = ", ".join(t.name for t in FIM_TEMPLATES)
    raise ValueError(f"fim template {name!r} is unknown (known: {known}, or 'auto' / 'none')")


def _resolve(t: FimTemplate, ids: Mapping[str, int]) -> ResolvedTemplate | None:
    if not all(tok in ids for tok in t.required_tokens()):
        return None
    return ResolvedTemplate(
        template=t,
        prefix_id=ids[t.prefix],
        suffix_id=ids[t.suffix],
        middle_id=ids[t.middle] if t.middle else None,
        stop_ids=frozenset(ids[s] for s in t.stop if s in ids),
        file_sep_id=ids.get(t.file_sep) if t.file_sep else None,
        repo_name_id=ids.get(t.repo_name) if t.repo_name else None,
    )


def detect_template(
    token_ids: Mapping[str, int] | Callable[[str], int | None],
    choice: str = "auto",
) -> ResolvedTemplate | None:
    """Pick the FIM template for a vocabulary.

    ``token_ids`` maps raw token text -> id (only special-looking tokens are needed). ``choice``
    is "auto" (first template whose tokens all exist), "none" (prefix-only), or a template name
    (raises ValueError if the model lacks its tokens).
    """
    if callable(token_ids):
        lookup = token_ids
        wanted = {tok for t in FIM_TEMPLATES for tok in (*t.required_tokens(), *t.stop, t.file_sep, t.repo_name) if tok}
        ids = {tok: i for tok in wanted if (i := lookup(tok)) is not None}
    else:
        ids = dict(token_ids)
    if choice == "none":
        return None
    if choice != "auto":
        t = template_by_name(choice)
        resolved = _resolve(t, ids)
        if resolved is None:
            missing = [tok for tok in t.required_tokens() if tok not in ids]
            raise ValueError(f"fim template {choice!r} does not fit this model: missing tokens {missing}")
        return resolved
    for t in FIM_TEMPLATES:
        resolved = _resolve(t, ids)
        if resolved is not None:
            return resolved
    return None

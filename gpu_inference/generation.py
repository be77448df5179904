"""Loading a base model (optionally with a fine-tuned adapter) and greedy chat, for tests and sanity checks."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def load_model(base_path: Path | str, adapter_path: Path | str | None = None) -> tuple[Any, Any]:
    """(model, tokenizer) in eval mode on the best device; a LoRA adapter is merged into the weights.

    A fully fine-tuned model can be given either as base_path, or as adapter_path
    (a folder with config.json and no adapter_config.json): run_training's output
    loads the same way whichever method made it.
    """
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from gpu_inference.runtime import pick_device

    if (
        adapter_path is not None
        and not (Path(adapter_path) / "adapter_config.json").exists()
        and (Path(adapter_path) / "config.json").exists()
    ):
        base_path, adapter_path = adapter_path, None
    # A fine-tune saves the tokenizer beside its weights; prefer it, it is what was trained.
    tokenizer_source = base_path
    if adapter_path is not None and (Path(adapter_path) / "tokenizer.json").exists():
        tokenizer_source = adapter_path
    tokenizer = AutoTokenizer.from_pretrained(str(tokenizer_source))
    model = AutoModelForCausalLM.from_pretrained(str(base_path), dtype=torch.float32)
    if adapter_path is not None:
        from peft import PeftModel

        from gpu_inference.runtime import peft_deprecation_silenced

        # Merging removes the adapter's extra matmuls (~35 % slower unmerged at batch 1).
        with peft_deprecation_silenced():
            model = PeftModel.from_pretrained(model, str(adapter_path)).merge_and_unload()
    return model.to(pick_device()).eval(), tokenizer


def stop_token_ids(model: Any, tokenizer: Any) -> list[int]:
    """Every id that ends an answer: the generation config's eos ids (end of turn included) and the tokenizer's."""
    configured = model.generation_config.eos_token_id
    ids = configured if isinstance(configured, list) else [configured]
    ids = [i for i in ids if i is not None]
    if tokenizer.eos_token_id is not None and tokenizer.eos_token_id not in ids:
        ids.append(tokenizer.eos_token_id)
    return ids


def chat(
    model: Any, tokenizer: Any, messages: list[dict[str, str]], max_new_tokens: int = 32
) -> str:
    """The assistant's greedy reply to messages, without special tokens."""
    import torch

    stops = stop_token_ids(model, tokenizer)
    pad = model.generation_config.pad_token_id
    if pad is None:
        pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else stops[0]
    inputs = tokenizer.apply_chat_template(
        messages, add_generation_prompt=True, return_dict=True, return_tensors="pt"
    )
    # Keep the end of a long conversation: the answer must fit in the context too.
    budget = model.config.max_position_embeddings - max_new_tokens
    inputs = {key: value[:, -budget:].to(model.device) for key, value in inputs.items()}
    with torch.no_grad():
        output = model.generate(
            **inputs,
            max_new_tokens=max_new_tokens,
            do_sample=False,
            eos_token_id=stops,
            pad_token_id=pad,
        )
    return tokenizer.decode(output[0, inputs["input_ids"].shape[1] :], skip_special_tokens=True)

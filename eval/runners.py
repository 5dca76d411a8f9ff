"""One runner per benchmark: ``run_<bench>(model, processor, dataset, *, adapter, ...) -> dict``.

A runner asks every question of ``dataset`` (an :class:`eval.readers.Benchmark`) with batched greedy
generation, appends each batch's predictions to ``<out_dir>/<bench>.predictions.jsonl`` as it arrives
(flushed per batch), scores them with ``eval.metrics`` and writes ``<out_dir>/<bench>.json`` (and a
confusion-matrix PNG for classification). Question ids already in the predictions file are skipped,
so a killed eval resumes where it stopped. Under ``accelerate launch`` the remaining questions are
split across processes; the main process merges their files and scores.
"""

from __future__ import annotations

import json
import logging
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from pathlib import Path

from tqdm.auto import tqdm

from eval.generate import (
    VQA_PROMPT,
    build_question,
    generate_batch,
    load_image,
    prompt_lengths,
)
from eval.predictions import merge_rank_files, rank_files, read_all_predictions
from eval.readers import BenchItem, Benchmark, subset
from eval.scoring import score_rows
from finetune.batching import length_sorted_batches
from finetune.distributed import process_state
from finetune.files import write_json_atomic

log = logging.getLogger(__name__)


def run_benchmark(name: str, model, processor, dataset: Benchmark, *, adapter, limit: int | None = None,
                  batch_size: int = 8, out_dir=None, max_new_tokens: int = 16, classification_prompt: str | None = None,
                  vqa_prompt: str = VQA_PROMPT, normalize: str = "geochat", max_patches: int | None = None,
                  seed: int = 0, progress: bool = True, shard: bool = True, model_fingerprint: str = "") -> dict:
    """Ask, record and score one benchmark.

    Args:
        name: ``ucmerced`` | ``aid`` | ``lrben`` (names the output files).
        dataset: the benchmark's items, from ``eval.readers`` or ``eval.geochat_bench``.
        adapter: the model family's adapter module (``finetune.models.adapters.get_adapter``).
        limit: ask at most this many questions (a seeded subset; see ``eval.readers.subset``).
        out_dir: where predictions/results go; None keeps everything in memory (no resume).
        classification_prompt: a template with ``{classes}``; None uses the benchmark's own prompt
            text, else GeoChat's. ``vqa_prompt``: a template with ``{question}``.
        normalize: headline metric normalisation, ``geochat`` or ``strict`` (both are reported).
        shard: under ``accelerate launch``, split the questions across processes (every process must
            call); False when only the main process calls (it then answers everything).
        model_fingerprint: identifies the weights (``eval.api`` hashes the checkpoint files). A
            predictions file made with other weights or generation settings is set aside
            (``<bench>.predictions.stale.jsonl``), not resumed.

    Returns:
        The metrics (``score`` is the headline number) plus counts, repairs and timing.
    """
    state = process_state()
    sharded = shard and state.num_processes > 1
    items = subset(dataset.items, limit, seed)
    questions = {item.question_id: build_question(item, dataset.task, dataset.classes, classification_prompt, vqa_prompt)
                 for item in items}
    pred_path = Path(out_dir) / f"{name}.predictions.jsonl" if out_dir is not None else None
    settings = {"model": model_fingerprint, "max_new_tokens": max_new_tokens, "classification_prompt": classification_prompt,
                "vqa_prompt": vqa_prompt, "max_patches": max_patches}
    stale = _set_aside_if_stale(pred_path, settings, state, sharded) if pred_path is not None else 0
    done, dropped = _resume(pred_path, state, sharded)
    todo = [item for item in items if item.question_id not in done]
    resumed = len(items) - len(todo)
    if resumed:
        log.info("%s: resuming, %d of %d questions already answered", name, resumed, len(items))

    start = time.perf_counter()
    if sharded:
        from accelerate.utils import gather_object

        with state.split_between_processes(todo) as part:
            rank_path = pred_path.with_name(f"{pred_path.stem}.rank{state.process_index}.jsonl") if pred_path else None
            new_rows = _answer(name, model, processor, adapter, part, questions, batch_size, max_new_tokens,
                               max_patches, rank_path, progress and state.is_main_process)
        new_rows = gather_object(new_rows)
        if pred_path is not None and state.is_main_process:
            merge_rank_files(pred_path, [item.question_id for item in items])
        state.wait_for_everyone()
    else:
        new_rows = _answer(name, model, processor, adapter, todo, questions, batch_size, max_new_tokens,
                           max_patches, pred_path, progress)
    elapsed = time.perf_counter() - start
    done.update({row["question_id"]: row for row in new_rows})

    # Score against the items as read now (their repaired ground truth), whatever a resumed row recorded.
    rows = [{**done[item.question_id], "ground_truth": item.ground_truth, "category": item.category} for item in items]
    result = score_rows(dataset.task, rows, dataset.classes, normalize)
    result.update({
        "benchmark": name, "n_questions": len(items), "resumed_from": resumed, "dropped_partial_lines": dropped,
        "stale_predictions_set_aside": stale,
        "generation_seconds": round(elapsed, 3), "questions_per_second": round(len(todo) / elapsed, 3) if elapsed else None,
        "repairs": dict(dataset.repairs), "source": dataset.source, "prompt": _prompt_description(dataset, items, questions, vqa_prompt),
        "normalize": normalize, "max_new_tokens": max_new_tokens, "batch_size": batch_size, "limit": limit,
    })
    if out_dir is not None and state.is_main_process:
        _write_result(Path(out_dir), name, result)
    return result


def _set_aside_if_stale(pred_path: Path, settings: dict, state, sharded: bool) -> int:
    """Move predictions made with other settings out of the way; returns how many rows were set aside.

    The settings live in the sidecar ``<bench>.predictions.meta.json``; a file without one counts as
    stale. The main process decides and moves; the others wait for it.
    """
    meta_path = pred_path.with_name(pred_path.stem + ".meta.json")
    moved = 0
    if state.is_main_process:
        old = json.loads(meta_path.read_text()) if meta_path.exists() else None
        rows, _ = read_all_predictions(pred_path)
        if rows and old != settings:
            log.warning("%s: made with other settings (%s vs %s); set aside, answering again", pred_path, old, settings)
            merge_rank_files(pred_path, list(rows))
            pred_path.replace(pred_path.with_name(pred_path.stem + ".stale.jsonl"))
            moved = len(rows)
        write_json_atomic(meta_path, settings)
    if sharded:  # only then do the other processes run this too (a barrier alone on rank 0 would hang)
        state.wait_for_everyone()
    return moved


def _resume(pred_path: Path | None, state, sharded: bool) -> tuple[dict[str, dict], int]:
    """Rows already answered. The main process first folds per-rank files and drops lines a kill cut
    short; then every process reads the same finished set (or the shards would disagree)."""
    if pred_path is None:
        return {}, 0
    dropped = 0
    if state.is_main_process:
        done, dropped = read_all_predictions(pred_path)
        if dropped or rank_files(pred_path):
            merge_rank_files(pred_path, list(done))
    if sharded:
        state.wait_for_everyone()
    done, _ = read_all_predictions(pred_path)
    return done, dropped


def _answer(name, model, processor, adapter, items: list[BenchItem], questions: dict[str, str], batch_size: int,
            max_new_tokens: int, max_patches, pred_path: Path | None, show_progress: bool) -> list[dict]:
    prompts = [adapter.generation_prompt(processor, questions[item.question_id], 1) for item in items]
    batches = length_sorted_batches(prompt_lengths(processor, prompts), batch_size, "eval.batch_size") if items else []
    rows = []
    with ExitStack() as stack:
        handle = None
        if pred_path is not None:
            pred_path.parent.mkdir(parents=True, exist_ok=True)
            handle = stack.enter_context(open(pred_path, "a", encoding="utf-8"))
        # Decode the next batch's images in a thread while the model answers this one.
        pool = stack.enter_context(ThreadPoolExecutor(max_workers=1))
        bar = stack.enter_context(tqdm(total=len(items), desc=f"eval {name}", unit="q", disable=not show_progress))
        pending = pool.submit(_load_images, items, batches[0]) if batches else None
        for k, batch in enumerate(batches):
            images = pending.result()
            if k + 1 < len(batches):
                pending = pool.submit(_load_images, items, batches[k + 1])
            answers = generate_batch(model, processor, adapter, [prompts[i] for i in batch], images,
                                     max_new_tokens=max_new_tokens, max_patches=max_patches)
            batch_rows = [_row(items[i], questions[items[i].question_id], a) for i, a in zip(batch, answers, strict=True)]
            if handle is not None:  # one flush per batch: a kill loses at most the batch in flight
                handle.write("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in batch_rows))
                handle.flush()
            rows.extend(batch_rows)
            bar.update(len(batch))
    return rows


def _load_images(items: list[BenchItem], batch: list[int]) -> list[list]:
    return [[load_image(items[i].image_path)] for i in batch]


def _row(item: BenchItem, question: str, answer: str) -> dict:
    return {"question_id": item.question_id, "image": item.image_path, "question": question, "answer": answer,
            "ground_truth": item.ground_truth, "category": item.category}


def _prompt_description(dataset: Benchmark, items: list[BenchItem], questions: dict[str, str], vqa_prompt: str) -> str:
    if dataset.task == "vqa":
        return vqa_prompt
    return questions[items[0].question_id] if items else ""


def _write_result(out_dir: Path, name: str, result: dict) -> None:
    if "confusion" in result:
        from eval.plots import plot_confusion

        png = out_dir / f"{name}.confusion.png"
        plot_confusion(result["confusion"]["labels"], result["confusion"]["matrix"], png, title=f"{name}: {result['score']:.2f}%")
        result["confusion_png"] = str(png)
    write_json_atomic(out_dir / f"{name}.json", result)



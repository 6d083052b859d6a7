"""Every clip of a folder through one :class:`~.conversion.Conversion`, on one process or split across the processes
of ``accelerate launch``.

- Inputs are the folder's files with the direction's extensions (not hidden ones, not sub-folders), in name order;
  each writes ``<out>/<input name without extension><output extension>``.
- A clip whose output exists is skipped: outputs are published whole (written to a temporary file and renamed), so
  an existing one is finished, and an interrupted batch resumes where it stopped.
- A clip that fails is reported and counted, and the batch goes on; the exit code is 1 if any failed.
- The summary (``av-link-summary.json`` in the output folder, and one printed line) is merged across processes.
"""

import json
import os
import time

from . import EXIT_FAILURE, PROG, CLIError
from .arguments import AUDIO_EXTENSIONS, VIDEO_EXTENSIONS
from .conversion import Conversion, convert_clip, load_clip_pipeline
from .helpers import _reason, check_input_file, make_generator, resolve_device, resolve_dtype
from .loading import check_pipeline_dir
from .progress import Progress

SUMMARY_NAME = "av-link-summary.json"


def output_name(source: str, extension: str) -> str:
    return os.path.splitext(os.path.basename(source))[0] + extension


def list_clips(directory: str, extensions, option: str) -> list:
    """The input files of `directory`, sorted by name."""
    names = sorted(
        name for name in os.listdir(directory)
        if not name.startswith(".") and os.path.splitext(name)[1].lower() in extensions
        and os.path.isfile(os.path.join(directory, name))
    )
    if not names:
        raise CLIError(f"{option} {directory}: the folder has no clips (files ending in {', '.join(extensions)})")
    return [os.path.join(directory, name) for name in names]


def check_output_folder(out: str, source_dir: str, clips: list, extension: str) -> None:
    """`--out` must be a folder (or not exist yet), not the input folder, and the outputs' names must not collide."""
    if os.path.exists(out) and not os.path.isdir(out):
        raise CLIError(f"--out {out}: is a file; with a folder of inputs --out is the folder to write to")
    if not os.path.exists(out) and os.path.splitext(out)[1].lower() in VIDEO_EXTENSIONS + AUDIO_EXTENSIONS:
        raise CLIError(f"--out {out}: the input is a folder, so --out must be a folder too (not a file name)")
    if os.path.isdir(out) and os.path.samefile(out, source_dir):
        raise CLIError(f"--out {out}: is the input folder; write the outputs to another folder")
    seen = {}
    for clip in clips:
        name = output_name(clip, extension)
        if name in seen:
            raise CLIError(f"{os.path.basename(seen[name])} and {os.path.basename(clip)} would both write {name}; "
                           f"rename one of them")
        seen[name] = clip
    if os.path.isdir(out) and not os.access(out, os.W_OK):
        raise CLIError(f"--out {out}: the folder is not writable")


def _process_state(args):
    """accelerate's view of this process (one process when not launched). CPU processes must say so, or
    `PartialState` does not join them: `accelerate launch` marks them with ACCELERATE_USE_CPU (which only
    `Accelerator` reads), and a machine without CUDA has no other choice."""
    # torch.distributed.nn is imported before the group exists, never after: its `functional` module binds
    # `group.WORLD` as the default argument of its collectives when imported, so imported later (diffusers pulls it in
    # through torch._dynamo) it kept the group alive after `destroy_process_group`, and gloo's threads were then torn
    # down with the interpreter, which sometimes aborted the process ("terminate called without an active exception").
    import torch
    import torch.distributed.nn
    from accelerate import PartialState
    from accelerate.utils import parse_flag_from_env

    if args.device:
        cpu = resolve_device(args.device).type == "cpu"
    else:
        cpu = parse_flag_from_env("ACCELERATE_USE_CPU") or not torch.cuda.is_available()
    return PartialState(cpu=cpu)


def run_folder(conversion: Conversion, args) -> int:
    started = time.perf_counter()
    source_dir, out_dir = conversion.source(args), args.out
    extension = conversion.output_extensions(args)[0]
    clips = list_clips(source_dir, conversion.input_extensions, conversion.input_option)
    check_output_folder(out_dir, source_dir, clips, extension)
    state = _process_state(args)
    device = resolve_device(args.device) if args.device else state.device  # each process its own accelerator
    resolve_dtype(args.dtype)
    check_pipeline_dir(conversion.pipeline_class(), args.model)
    os.makedirs(out_dir, exist_ok=True)  # only now: a run that fails its checks leaves no folder behind
    done_before = [c for c in clips if os.path.exists(os.path.join(out_dir, output_name(c, extension)))]
    pending = [c for c in clips if c not in done_before]
    # Every process lists the outputs before any process writes one, so all split the same pending list.
    state.wait_for_everyone()
    results = [_result(c, extension, "skipped") for c in done_before] if state.is_main_process else []
    progress = Progress(conversion.command, enabled=not args.quiet and state.is_local_main_process, leave=False)
    with state.split_between_processes(pending) as share:
        results += _run_share(conversion, args, share, out_dir, extension, progress, device, state)
    if state.num_processes > 1:
        from accelerate.utils import gather_object

        results = gather_object(results)
        # Tear the process group down before exit, not at interpreter shutdown (see _process_state).
        state.destroy_process_group()
    summary = summarize(conversion.command, source_dir, out_dir, results, state.num_processes, time.perf_counter() - started)
    if state.is_main_process:
        _write_json(os.path.join(out_dir, SUMMARY_NAME), summary)
        print(f"{PROG} {conversion.command}: {describe(summary)}; summary in {os.path.join(out_dir, SUMMARY_NAME)}", flush=True)
    if summary["failed"]:
        failed = [r for r in summary["results"] if r["status"] == "failed"]
        raise CLIError(f"{len(failed)} of {summary['clips']} clips failed (see the summary); first: {failed[0]['error']}",
                       EXIT_FAILURE)
    return 0


def _run_share(conversion, args, share, out_dir, extension, progress, device, state) -> list:
    """This process's clips; a failing clip is recorded and the loop goes on (Ctrl-C still stops it)."""
    rank = f" (process {state.process_index + 1} of {state.num_processes})" if state.num_processes > 1 else ""
    debug = bool(os.environ.get("AV_LINK_DEBUG")) or getattr(args, "debug", False)
    # outside the per-clip handling: a model that cannot load would fail every clip the same way
    pipe = load_clip_pipeline(conversion, args, progress, device) if share else None
    results, prefetched = [], {}

    def prefetch(k: int) -> None:  # clip k starts decoding in the background (V2A), while clip k - 1 samples
        if conversion.prefetch is not None and k < len(share) and share[k] not in prefetched:
            prefetched[share[k]] = conversion.prefetch(args, share[k])

    with progress.clips(len(share), f"clips{rank}") as bar:
        for k, source in enumerate(share):
            out = os.path.join(out_dir, output_name(source, extension))
            if os.path.exists(out):  # written meanwhile by another run
                results.append(_result(source, extension, "skipped", process=state.process_index))
                bar.update()
                continue
            clip_started = time.perf_counter()
            generator, seed = make_generator(args.seed, device)  # with --seed, each clip as its own single-file run
            try:
                check_input_file(source, conversion.input_option)
                prefetch(k)
                prefetch(k + 1)
                convert_clip(conversion, pipe, args, prefetched.pop(source, source), out, progress, generator)
                results.append(_result(source, extension, "done", time.perf_counter() - clip_started, seed,
                                       process=state.process_index))
            except Exception as err:  # a bad clip must not stop the batch; KeyboardInterrupt is not an Exception
                if debug:
                    raise
                results.append(_result(source, extension, "failed", time.perf_counter() - clip_started, seed, _reason(err),
                                       state.process_index))
                progress.note(f"failed {os.path.basename(source)}: {_reason(err)}")
            bar.update()
    return results


def _result(source, extension, status, seconds=None, seed=None, error=None, process=0) -> dict:
    return dict(input=os.path.basename(source), output=output_name(source, extension), status=status,
                seconds=None if seconds is None else round(seconds, 3), seed=seed, error=error, process=process)


def summarize(command, source_dir, out_dir, results, processes, seconds) -> dict:
    results = sorted(results, key=lambda r: r["input"])
    counts = {status: sum(r["status"] == status for r in results) for status in ("done", "skipped", "failed")}
    times = [r["seconds"] for r in results if r["status"] == "done"]
    return dict(
        command=command, inputs=os.path.abspath(source_dir), outputs=os.path.abspath(out_dir), processes=processes,
        clips=len(results), **counts,
        seconds_per_clip=round(sum(times) / len(times), 3) if times else None,  # mean over the clips done, each from decoding to written
        seconds=round(seconds, 3), results=results,
    )


def describe(summary: dict) -> str:
    per_clip = f", {summary['seconds_per_clip']:.2f} s per clip" if summary["seconds_per_clip"] is not None else ""
    processes = f" on {summary['processes']} processes" if summary["processes"] > 1 else ""
    return (f"{summary['clips']} clips from {summary['inputs']}: {summary['done']} done, {summary['skipped']} skipped "
            f"(output exists), {summary['failed']} failed{per_clip}; took {summary['seconds']:.2f} s{processes}")


def _write_json(path: str, data: dict) -> None:
    tmp = f"{path}.tmp{os.getpid()}"  # renamed into place: a reader never sees half a summary
    try:
        with open(tmp, "w", encoding="utf-8") as f:
            json.dump(data, f, indent=2)
            f.write("\n")
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)

"""The `packshot` command line: every command is a thin shell over a library function.

Exit codes: 0 success, 2 usage error (a wrong flag or value), 1 any other failure, with a
one-line reason on stderr. `--debug` (or PACKSHOT_DEBUG=1) shows the traceback instead.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from packshot import __version__
from packshot.errors import PackshotError
from packshot.progress import ProgressCallback, ProgressEvent

# Human output goes to stderr so that `--json` output on stdout stays machine-readable.
err = Console(stderr=True, highlight=False)
out = Console(highlight=False)


class PackshotGroup(typer.core.TyperGroup):
    """Turns errors into one line and an exit code, for every command and sub-command."""

    def invoke(self, ctx: typer.Context) -> Any:
        try:
            return super().invoke(ctx)
        except (typer.TyperException, typer.Exit, typer.Abort):
            raise  # usage errors (exit 2), --help, explicit exits: typer prints these itself
        except PackshotError as exc:
            if _debug(ctx):
                raise
            err.print(f"[bold red]Error:[/] {_one_line(str(exc))}", soft_wrap=True)
            raise typer.Exit(exc.exit_code) from None
        except KeyboardInterrupt:
            err.print("[bold red]Interrupted.[/]")
            raise typer.Exit(130) from None
        except Exception as exc:  # a bug in packshot, not the user's fault
            if _debug(ctx):
                raise
            err.print(
                f"[bold red]Error:[/] unexpected {type(exc).__name__}: {_one_line(str(exc))}. "
                "This is a bug in packshot: run again with --debug and report the traceback.",
                soft_wrap=True,
            )
            raise typer.Exit(1) from None


def _one_line(text: str) -> str:
    return " ".join(text.split())


def _debug(ctx: typer.Context) -> bool:
    root = ctx.find_root()
    return bool((root.obj or {}).get("debug")) or os.environ.get("PACKSHOT_DEBUG") == "1"


app = typer.Typer(
    cls=PackshotGroup,
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
    help="packshot: product photography from a handful of photos and a text description.",
)
photos_app = typer.Typer(
    cls=PackshotGroup, no_args_is_help=True, help="Check and prepare a product's photos."
)
models_app = typer.Typer(
    cls=PackshotGroup, no_args_is_help=True, help="Find, build and inspect base models."
)
app.add_typer(photos_app, name="photos")
app.add_typer(models_app, name="models")


def _version(value: bool) -> None:
    if value:
        typer.echo(f"packshot {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    ctx: typer.Context,
    debug: bool = typer.Option(False, "--debug", help="Show tracebacks instead of one line."),
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Print the version and exit."
    ),
) -> None:
    """packshot: product photography from a handful of photos and a text description."""
    ctx.obj = {"debug": debug}


@contextmanager
def progress_bar(description: str, *, enabled: bool = True) -> Iterator[ProgressCallback]:
    """A rich progress bar on stderr, driven by core ProgressEvents."""
    if not enabled or not err.is_terminal:
        # No terminal (CI, pipes): one line per stage instead of a redrawn bar.
        seen: set[str] = set()

        def plain(event: ProgressEvent) -> None:
            if event.stage not in seen:
                seen.add(event.stage)
                err.print(f"{description}: {event.stage}…")

        yield plain
        return

    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TextColumn("{task.fields[message]}"),
    )
    with Progress(*columns, console=err, transient=False) as bar:
        tasks: dict[str, Any] = {}

        def update(event: ProgressEvent) -> None:
            if event.stage not in tasks:
                tasks[event.stage] = bar.add_task(
                    f"{description} · {event.stage}", total=event.total, message=""
                )
            bar.update(
                tasks[event.stage],
                completed=event.done,
                total=event.total,
                message=event.message[:60],
            )

        yield update


def _print_json(data: Any) -> None:
    typer.echo(json.dumps(data, indent=2, ensure_ascii=False, default=str))


# ---------------------------------------------------------------------------------------
# packshot photos …


@photos_app.command("check")
def photos_check(
    directory: Path = typer.Argument(..., help="Folder with the product's photos."),
    as_json: bool = typer.Option(False, "--json", help="Print the report as one JSON object."),
    min_side: int = typer.Option(256, help="Reject photos whose short side is below this (px)."),
    max_megapixels: float = typer.Option(
        50.0, help="Refuse photos above this many megapixels before decoding them."
    ),
    save: Path | None = typer.Option(None, help="Also write the report as JSON to this file."),
) -> None:
    """Check a folder of product photos and judge the set.

    Every file is decoded safely and judged on its own (accepted, or rejected with a
    reason); the set is then judged as a whole: duplicates, blur, exposure, and features
    shared by most photos (same background, same angle) that would leak into every shot.
    The verdict is "ready", "usable" (with warnings) or "not enough".
    """
    from packshot.intake import IntakeConfig, check_photos

    if min_side < 1:
        raise typer.BadParameter(f"must be at least 1, got {min_side}", param_hint="--min-side")
    if max_megapixels <= 0:
        raise typer.BadParameter(
            f"must be positive, got {max_megapixels}", param_hint="--max-megapixels"
        )
    config = IntakeConfig(min_side=min_side, max_pixels=int(max_megapixels * 1_000_000))
    with progress_bar("Checking photos", enabled=not as_json) as progress:
        report = check_photos(directory, config=config, progress=progress)
    if save is not None:
        report.save(save)
    if as_json:
        _print_json(report.to_dict())
    else:
        print_report(report)


def print_report(report: Any) -> None:
    """The photo-set report as tables and sentences, for people."""
    data = report.to_dict()
    table = Table(title=f"{len(data['accepted'])} accepted", title_justify="left")
    table.add_column("photo")
    table.add_column("size", justify="right")
    table.add_column("warnings")
    for photo in data["accepted"]:
        table.add_row(
            photo["file"], f"{photo['width']}×{photo['height']}", "; ".join(photo["warnings"])
        )
    out.print(table)
    if data["rejected"]:
        rejected = Table(title=f"{len(data['rejected'])} rejected", title_justify="left")
        rejected.add_column("file")
        rejected.add_column("reason")
        for item in data["rejected"]:
            rejected.add_row(item["file"], item.get("message") or item["reason"])
        out.print(rejected)
    for group in data["duplicates"]:
        files = group["files"] if isinstance(group, dict) else group
        kind = group.get("kind", "duplicate") if isinstance(group, dict) else "duplicate"
        out.print(f"[yellow]{kind} duplicates:[/] {', '.join(files)}")
    colour = {"ready": "green", "usable": "yellow"}.get(data["verdict"], "red")
    out.print(f"\nVerdict: [bold {colour}]{data['verdict']}[/]")
    for sentence in data["advice"]:
        out.print(f" • {sentence}")


@photos_app.command("prepare")
def photos_prepare(
    directory: Path = typer.Argument(..., help="Folder with the product's photos."),
    out_dir: Path = typer.Option(..., "--out", help="Where to write the training set."),
    class_word: str = typer.Option(..., "--class", help='The kind of product, e.g. "headphones".'),
    token: str = typer.Option("sks", help="The rare token that will stand for this product."),
    resolution: int = typer.Option(512, help="Side of the square training crops (px)."),
    captioner: str | None = typer.Option(
        None, help="A captioning model (Hub id or folder) for automatic captions."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print the manifest as JSON."),
) -> None:
    """Check the photos, then write square crops centred on the product, masks and captions."""
    from packshot.intake import HFCaptioner, check_photos, prepare_training_set

    if resolution < 64 or resolution % 8:
        raise typer.BadParameter(
            f"must be a multiple of 8 and at least 64, got {resolution}",
            param_hint="--resolution",
        )
    with progress_bar("Preparing", enabled=not as_json) as progress:
        report = check_photos(directory, progress=progress)
        model = HFCaptioner(captioner) if captioner else None
        manifest = prepare_training_set(
            report,
            out_dir,
            resolution=resolution,
            token=token,
            class_word=class_word,
            captioner=model,
            progress=progress,
        )
    if as_json:
        _print_json(manifest.to_dict())
    else:
        out.print(f"Wrote {len(manifest.items)} training images to {out_dir}")


# ---------------------------------------------------------------------------------------
# packshot models …


@models_app.command("info")
def models_info(
    model: str = typer.Argument(
        ...,
        help="A Hugging Face Hub id, a local diffusers folder, or tiny / tiny-sdxl / tiny-inpaint.",
    ),
    as_json: bool = typer.Option(False, "--json", help="Print the description as JSON."),
) -> None:
    """Find a base model (downloading it from the Hub if needed) and say what it is."""
    from packshot.runtime import describe_model, resolve_model

    info = describe_model(resolve_model(model))
    if as_json:
        _print_json(info)
    else:
        for key, value in info.items():
            out.print(f"{key}: {value}")


# ---------------------------------------------------------------------------------------
# packshot demo


@app.command("demo")
def demo(
    out_dir: Path = typer.Option(Path("demo-out"), "--out", help="Where to write the results."),
    photos: Path | None = typer.Option(
        None, help="Photos to use instead of the bundled sample product."
    ),
    model: str | None = typer.Option(
        None, help="Base model; default: the real default on a GPU, `tiny` without one."
    ),
) -> None:
    """Run the main job end to end on the bundled sample product."""
    from packshot.demo import run_demo

    run_demo(out_dir=out_dir, photos=photos, model=model, console=err, progress_bar=progress_bar)


def main() -> None:
    """Entry point of the `packshot` script."""
    app(prog_name="packshot")


if __name__ == "__main__":
    main()

"""Options shared by several commands, and the error handling every command uses."""

from __future__ import annotations

import functools
import logging
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, NoReturn

import click

__all__ = [
    "EXIT_BROKEN_PIPE",
    "EXIT_PARTIAL",
    "EXIT_USAGE",
    "FETCH_REQUEST_OPTIONS",
    "batch_size_option",
    "common_options",
    "device_option",
    "fetch_options_from",
    "fetch_request_options",
    "model_option",
    "overwrite_option",
    "recursive_option",
    "run_library_call",
]

#: exit status when a batch finished but some inputs failed
EXIT_PARTIAL = 3
#: exit status of a usage error (click's own)
EXIT_USAGE = 2
#: exit status when the reader of standard output went away (``... | head``): the status
#: the shell gives a process ended by SIGPIPE, as ``cat`` or ``grep`` end there
EXIT_BROKEN_PIPE = 128 + 13


def common_options(func: Callable[..., Any]) -> Callable[..., Any]:
    """Add ``-v/--verbose``, ``-q/--quiet`` and ``--debug`` and configure logging from them."""

    @click.option("-v", "--verbose", count=True, help="More log output (repeat for debug).")
    @click.option("-q", "--quiet", is_flag=True, help="Only errors; no progress bar.")
    @click.option("--debug", is_flag=True, help="Show full tracebacks for errors.")
    @functools.wraps(func)
    def wrapper(*args: Any, verbose: int, quiet: bool, debug: bool, **kwargs: Any) -> Any:
        level = logging.ERROR if quiet else logging.WARNING - 10 * min(verbose, 2)
        logging.basicConfig(
            level=level, format="%(levelname)s: %(message)s", stream=sys.stderr, force=True
        )
        ctx = click.get_current_context()
        ctx.meta["galaxalign.quiet"] = quiet
        ctx.meta["galaxalign.debug"] = debug
        return run_library_call(func, *args, debug=debug, **kwargs)

    return wrapper


def base_dirs_option(func: Callable[..., Any]) -> Callable[..., Any]:
    """``--base-dir DIR`` (repeatable): folders a catalog's relative cutout paths are under."""
    return click.option(
        "--base-dir",
        "base_dirs",
        multiple=True,
        type=click.Path(file_okay=False),
        help="Folder the catalog's relative cutout paths are relative to, for the drawn "
        "cutouts (repeatable) [the current folder, then the catalog's].",
    )(func)


def overwrite_option(func: Callable[..., Any]) -> Callable[..., Any]:
    return click.option(
        "--overwrite", is_flag=True, help="Replace an existing output instead of refusing."
    )(func)


def recursive_option(func: Callable[..., Any]) -> Callable[..., Any]:
    """``--recursive``: also read the cutouts in sub-folders of the given folders."""
    return click.option(
        "-r",
        "--recursive",
        is_flag=True,
        help="Also read the cutouts in the sub-folders of the given folders "
        '(a quoted "dir/**/*.fits" pattern does this for one pattern).',
    )(func)


def model_option(func: Callable[..., Any]) -> Callable[..., Any]:
    """``--model NAME|PATH``, the bundled default model unless given."""
    return click.option(
        "--model",
        "model",
        default="default",
        show_default=True,
        help="Bundled model name or a model directory.",
    )(func)


def loader_workers_option(func: Callable[..., Any]) -> Callable[..., Any]:
    """``--workers N``: DataLoader processes reading and preparing cutouts."""
    return click.option(
        "--workers",
        type=click.IntRange(0),
        default=None,
        help="Loader processes reading cutouts [default: automatic].",
    )(func)


def path_col_options(func: Callable[..., Any]) -> Callable[..., Any]:
    """``--path-col COL`` and ``--base-dir DIR``: cutout files named in a catalog column."""
    func = click.option(
        "--base-dir",
        type=click.Path(file_okay=False, path_type=Path),
        help="Start of relative paths in --path-col [default: current directory].",
    )(func)
    return click.option("--path-col", help="Cutouts: column of cutout file paths.")(func)


def classes_option(func: Callable[..., Any]) -> Callable[..., Any]:
    """``--classes FILE``: zero-shot classes instead of the model's own."""
    return click.option(
        "--classes",
        type=click.Path(exists=True, dir_okay=False),
        help="YAML/TOML file of zero-shot classes (descriptions and/or symbols) to "
        "classify into instead of the model's own; see docs/guide.md.",
    )(func)


def batch_size_option(func: Callable[..., Any]) -> Callable[..., Any]:
    """``--batch-size``: cutouts per model forward pass."""
    return click.option(
        "--batch-size",
        default=64,
        show_default=True,
        type=click.IntRange(1),
        help="Cutouts per model forward pass.",
    )(func)


def device_option(func: Callable[..., Any]) -> Callable[..., Any]:
    """``--device``: the torch device of the model."""
    return click.option(
        "--device", default="cpu", show_default=True, help="torch device (cpu, cuda, cuda:1)."
    )(func)


#: parameters of fetch_request_options that go into a fetch client's options
FETCH_REQUEST_OPTIONS = (
    "size",
    "pixscale",
    "bands",
    "layer",
    "base_url",
    "cache_dir",
    "max_workers",
    "rate_limit",
    "timeout",
    "max_retries",
)


def fetch_request_options(func: Callable[..., Any]) -> Callable[..., Any]:
    """The request options of commands that fetch cutouts on the fly (``--size`` ...)."""
    options = [
        click.option(
            "--size", type=click.IntRange(min=1), help="Fetch: pixels [default: model's field]."
        ),
        click.option(
            "--pixscale",
            type=click.FloatRange(min=0, min_open=True),
            help="Fetch: arcsec per pixel [default: the survey's].",
        ),
        click.option("--bands", help="Fetch: band letters [default: the model's bands]."),
        click.option(
            "--layer", help="Fetch: survey layer or data release (see the fetch command)."
        ),
        click.option(
            "--base-url", help="Fetch: service base URL (overrides environment and config)."
        ),
        click.option(
            "--cache-dir",
            type=click.Path(file_okay=False, path_type=Path),
            help="Fetch: on-disk cache (shared storage on a cluster) "
            "[default: galaxalign_astro.fetch.conf.cache_dir].",
        ),
        click.option("--no-cache", is_flag=True, help="Fetch: neither read nor fill the cache."),
        click.option("--max-workers", type=click.IntRange(min=1), help="Fetch: parallel requests."),
        click.option(
            "--rate-limit", type=click.FloatRange(min=0), help="Fetch: most requests per second."
        ),
        click.option(
            "--timeout", type=click.FloatRange(min=0, min_open=True), help="Fetch: seconds."
        ),
        click.option(
            "--max-retries", type=click.IntRange(min=0), help="Fetch: retries of a request."
        ),
    ]
    for option in reversed(options):
        func = option(func)
    return func


def fetch_source_options(
    *, fetch_help: str, fetch_dir_help: str
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """``--fetch SURVEY``, its request options and ``--fetch-dir``: cutouts fetched on
    the fly (``annotate``, ``annotate-hats``; each says where and for how long)."""

    def decorate(func: Callable[..., Any]) -> Callable[..., Any]:
        func = click.option(
            "--fetch-dir", type=click.Path(file_okay=False, path_type=Path), help=fetch_dir_help
        )(func)
        func = fetch_request_options(func)
        return click.option(
            "--fetch", type=click.Choice(["legacysurvey", "sdss", "hips"]), help=fetch_help
        )(func)

    return decorate


def fetch_options_from(params: dict[str, Any]) -> dict[str, Any]:
    """The fetch client options a user gave, from a command's parameters."""
    options = {key: params[key] for key in FETCH_REQUEST_OPTIONS if params.get(key) is not None}
    if params.get("no_cache"):
        options["cache"] = False
    return options


def run_library_call(func: Callable[..., Any], *args: Any, debug: bool, **kwargs: Any) -> Any:
    """Call ``func``; turn library errors into one-line messages and exit status 1.

    An unsupported file format the user named is a usage error (exit status 2); a
    closed standard output (``... | head``) ends the command quietly with
    `EXIT_BROKEN_PIPE`.
    """
    from ..errors import GalaxAlignError, UnsupportedFormatError

    try:
        return func(*args, **kwargs)
    except (click.exceptions.Exit, click.ClickException, click.Abort):
        raise
    except KeyboardInterrupt:
        click.echo("Interrupted.", err=True)
        sys.exit(130)
    except BrokenPipeError:
        if debug:
            raise
        _leave_closed_stdout()
    except UnsupportedFormatError as exc:
        if debug:
            raise
        click.echo(f"Error: {exc}", err=True)
        sys.exit(EXIT_USAGE)
    except (GalaxAlignError, OSError, ValueError) as exc:
        if debug:
            raise
        click.echo(f"Error: {exc}", err=True)
        sys.exit(1)


def _leave_closed_stdout() -> NoReturn:
    """Exit quietly after the reader of standard output went away."""
    # whatever is still buffered cannot be delivered, and Python flushes stdout on exit:
    # pointing it at devnull keeps that flush from failing again with a traceback
    try:
        fileno = sys.stdout.fileno()
    except (OSError, ValueError):  # not a real file (captured output): nothing to flush
        sys.exit(EXIT_BROKEN_PIPE)
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, fileno)
    os.close(devnull)
    sys.exit(EXIT_BROKEN_PIPE)

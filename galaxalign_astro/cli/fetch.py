"""``galaxalign-astro fetch``: download survey cutouts for every row of a catalogue."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import click

from .options import EXIT_PARTIAL, common_options

__all__ = ["command"]

#: failures of the last run, written into the output directory
FAILURES_FILE = "failures.ecsv"
_SHOWN_FAILURES = 10


def _parse_hips_ids(values: tuple[str, ...]) -> dict[str, str]:
    ids = {}
    for value in values:
        band, sep, hips = value.partition("=")
        if not sep or not band.strip() or not hips.strip():
            msg = f"--hips-id must look like BAND=HIPS_ID (e.g. g=CDS/P/SDSS9/g), got {value!r}"
            raise click.BadParameter(msg, param_hint="--hips-id")
        ids[band.strip()] = hips.strip()
    return ids


def _write_table_atomic(table: Any, path: Path) -> None:
    from ..fetch.storage import atomic_write_bytes

    text = io.StringIO()
    table.write(text, format="ascii.ecsv")
    atomic_write_bytes(text.getvalue().encode(), path)


@click.command("fetch")
@click.argument("catalog", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option(
    "--survey",
    type=click.Choice(["legacysurvey", "sdss", "hips"]),
    default="legacysurvey",
    show_default=True,
    help="Cutout service.",
)
@click.option(
    "-o",
    "--out-dir",
    required=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="Directory for the <id>.fits cutouts and failures.ecsv.",
)
@click.option("--size", type=click.IntRange(min=1), help="Cutout width in pixels [default: 256].")
@click.option(
    "--pixscale",
    type=click.FloatRange(min=0, min_open=True),
    help="Arcsec per pixel [default: legacysurvey 0.262, sdss 0.396 (native), hips 0.262].",
)
@click.option("--bands", help="Band letters [default: legacysurvey grz, sdss gri, hips grz].")
@click.option(
    "--layer",
    help="legacysurvey: ls-dr10 (default) or ls-dr9; sdss: data release (dr17); "
    "hips: legacysurvey-dr10 (default), sdss9, panstarrs-dr1 or a HiPS id template with {band}.",
)
@click.option(
    "--hips-id",
    "hips_ids",
    multiple=True,
    metavar="BAND=ID",
    help="HiPS id of one band (hips survey only; repeatable).",
)
@click.option("--ra-col", help="RA column [default: first of ra, RA, ra_deg, RAJ2000, ...].")
@click.option("--dec-col", help="Dec column [default: first of dec, DEC, dec_deg, DEJ2000, ...].")
@click.option("--id-col", help="Identifier column, used as file name [default: row number].")
@click.option("--format", "table_format", help="astropy format of CATALOG if not guessed.")
@click.option(
    "--cache-dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="On-disk cache [default: galaxalign_astro.fetch.conf.cache_dir].",
)
@click.option("--no-cache", is_flag=True, help="Neither read nor fill the on-disk cache.")
@click.option("--max-workers", type=click.IntRange(min=1), help="Parallel requests [default: 4].")
@click.option(
    "--rate-limit",
    type=click.FloatRange(min=0),
    help="Most requests per second, 0 for no limit [default: 5].",
)
@click.option(
    "--timeout", type=click.FloatRange(min=0, min_open=True), help="Seconds [default: 60]."
)
@click.option(
    "--max-retries",
    type=click.IntRange(min=0),
    help="Retries of a request after a connection error, timeout, 429 or 5xx [default: 4].",
)
@click.option("--base-url", help="Service base URL (overrides the environment and config).")
@click.option("--dry-run", is_flag=True, help="Print the requests of each row and send nothing.")
@click.option(
    "--overwrite", is_flag=True, help="Download again cutouts whose file exists (default: keep)."
)
@common_options
def command(
    catalog: Path,
    survey: str,
    out_dir: Path,
    size: int | None,
    pixscale: float | None,
    bands: str | None,
    layer: str | None,
    hips_ids: tuple[str, ...],
    ra_col: str | None,
    dec_col: str | None,
    id_col: str | None,
    table_format: str | None,
    cache_dir: Path | None,
    no_cache: bool,
    max_workers: int | None,
    rate_limit: float | None,
    timeout: float | None,
    max_retries: int | None,
    base_url: str | None,
    dry_run: bool,
    overwrite: bool,
) -> None:
    """Download a survey cutout for every row of CATALOG (any table astropy reads).

    Writes OUT_DIR/<id>.fits, (bands, N, N) float32 cubes with a TAN WCS and BANDS keywords
    whatever the survey. Files already there are kept unless --overwrite, so an interrupted
    run can be restarted. Failed rows are listed in OUT_DIR/failures.ecsv. Exit status: 0 all
    rows fetched, 3 some rows failed, 1 fatal error, 2 usage error.
    """
    from astropy.coordinates import SkyCoord
    from astropy.table import Table

    from ..fetch import fetch_cutouts, get_client, read_targets

    ctx = click.get_current_context()
    quiet = bool(ctx.meta.get("galaxalign.quiet", False))
    options: dict[str, Any] = {}
    for key, value in (
        ("layer", layer),
        ("cache_dir", cache_dir),
        ("max_workers", max_workers),
        ("rate_limit", rate_limit),
        ("timeout", timeout),
        ("max_retries", max_retries),
        ("base_url", base_url),
    ):
        if value is not None:
            options[key] = value
    if no_cache:
        options["cache"] = False
    if hips_ids:
        if survey != "hips":
            msg = "--hips-id only applies to --survey hips"
            raise click.BadParameter(msg, param_hint="--hips-id")
        options["hips_ids"] = _parse_hips_ids(hips_ids)
    try:
        table = Table.read(catalog, format=table_format)
    except Exception as exc:  # astropy raises many types for an unreadable table
        msg = f"cannot read catalogue {catalog}: {exc} (try --format)"
        raise click.ClickException(msg) from exc

    client = get_client(survey, **options)
    if dry_run:
        ids, ra, dec = read_targets(table, id_col=id_col, ra_col=ra_col, dec_col=dec_col)
        for ident, r, d in zip(ids, ra, dec, strict=True):
            plan = client.get_cutout(
                SkyCoord(r, d, unit="deg"),
                size=size,
                pixscale=pixscale,
                bands=bands,
                get_query_payload=True,
            )
            for spec in plan:
                click.echo(f"{ident}\t{spec['method']} {spec['full_url']}")
        return

    result = fetch_cutouts(
        table,
        client=client,
        out_dir=out_dir,
        id_col=id_col,
        ra_col=ra_col,
        dec_col=dec_col,
        size=size,
        pixscale=pixscale,
        bands=bands,
        max_workers=max_workers,
        overwrite=overwrite,
        progress=not quiet,
    )
    failed = result[result["status"] == "error"]
    failures = failed["id", "ra", "dec", "error"]
    failures.meta.update({k: v for k, v in result.meta.items()})
    failures.meta["catalog"] = str(catalog)
    _write_table_atomic(failures, out_dir / FAILURES_FILE)

    n_ok = len(result) - len(failed)
    sources = list(result["source"])
    if not quiet:
        click.echo(
            f"{n_ok} of {len(result)} cutouts in {out_dir} "
            f"({sources.count('network')} downloaded, {sources.count('cache')} from cache, "
            f"{sources.count('exists')} already there); {len(failed)} failed."
        )
    if len(failed):
        for row in failed[:_SHOWN_FAILURES]:
            click.echo(f"  {row['id']}: {row['error']}", err=True)
        more = len(failed) - _SHOWN_FAILURES
        tail = f" ({more} more)" if more > 0 else ""
        click.echo(f"Failures{tail} listed in {out_dir / FAILURES_FILE}", err=True)
        ctx.exit(EXIT_PARTIAL)

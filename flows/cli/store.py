"""`readthrough store`: what the work folder ($READTHROUGH_HOME) holds; `store prune`: reclaim what nothing uses."""

from __future__ import annotations

import click


@click.group(name="store", invoke_without_command=True)
@click.pass_context
def command(ctx):
    """Show what $READTHROUGH_HOME holds: rendered lines, voice locks, auditions, cached Prefect results and logs,
    with their size and count.

    \b
    Examples:
      readthrough store
      readthrough store prune --keep out/ --keep pilot.fountain --dry-run
      readthrough store prune --older-than 2026-11-01
    """
    if ctx.invoked_subcommand is not None:
        return
    from rich.console import Console
    from rich.table import Table

    from flows.housekeeping import known_reports, usage
    from pipeline.files import human_bytes
    from pipeline.config import home_dir

    home = home_dir()
    areas = usage(home)
    table = Table(title=f"{home}", title_justify="left")
    for col, kw in (("area", {}), ("items", {"justify": "right"}), ("files", {"justify": "right"}),
                    ("size", {"justify": "right"})):
        table.add_column(col, **kw)
    what = {"lines": "lines", "locks": "voice locks", "auditions": "audition takes", "prefect-results": "results",
            "logs": "logs", "renders": "render records", "other": "other"}
    for a in areas:
        table.add_row(a.name, f"{a.items} {what[a.name]}", str(a.files), human_bytes(a.bytes))
    table.add_row("total", "", str(sum(a.files for a in areas)), human_bytes(sum(a.bytes for a in areas)))
    console = Console()
    console.print(table)
    reports = known_reports(home)
    console.print(f"{len(reports)} output folder(s) rendered with this home still have a report. Reclaim space: "
                  "`readthrough store prune --keep OUT_OR_SCRIPT ... --dry-run`.")


@command.command(name="prune")
@click.option("--keep", multiple=True, type=click.Path(exists=True),
              help="A script, output folder, render-report.json or cast file still in use; repeat for each. "
                   "What they use stays, everything else goes.")
@click.option("--older-than", "older_than", metavar="DATE",
              help="Remove only what was last written before DATE (YYYY-MM-DD); alone: everything older.")
@click.option("--dry-run", is_flag=True, help="Say what would be removed; remove nothing.")
def prune(keep, older_than, dry_run):
    """Remove lines, locks, auditions and cached results that no kept script, output folder or cast file uses
    (and/or that are older than a date). A voice lock that any render report or a kept cast file names is never
    removed. Without --keep or --older-than nothing is removed.

    \b
    Examples:
      readthrough store prune --keep out/ --dry-run
      readthrough store prune --keep pilot.fountain --keep renders/pilot --keep pilot.cast.toml
      readthrough store prune --older-than 2026-11-01
    """
    from flows.housekeeping import apply_prune, plan_prune
    from pipeline.files import human_bytes
    from pipeline.config import home_dir

    home = home_dir()
    plan = plan_prune(home, list(keep), older_than)
    verb = "Would remove" if dry_run else "Removed"
    if not dry_run:
        apply_prune(plan)
    click.echo(f"{verb} {plan.lines} line(s), {plan.locks} lock(s), {plan.auditions} audition take(s) and "
               f"{plan.results} cached result(s): {human_bytes(plan.bytes)} from {home}.")
    if plan.kept_locks:
        click.echo(f"Kept {plan.kept_locks} lock(s) that a render report or cast file still names.")

"""The `ridgeplan` command line. Every command has a --json form with units in the keys.

Errors in input print one line naming the field and the allowed values and exit with status 2.
"""

from __future__ import annotations

import contextlib
import os
import sys

import typer

try:  # typer >= 0.20 vendors click as typer._click; older releases use click itself
    from typer._click import exceptions as cx
except ImportError:  # pragma: no cover - depends on the installed typer
    from click import exceptions as cx

from model.errors import RidgeplanError

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  rich_markup_mode=None, help="Roofline capacity planner for LLM serving and training.")


@app.callback()
def _group() -> None:
    """Keeps `ridgeplan` a group of commands when only one command module is imported (see ALONE)."""


# commands whose module is imported alone when the command is run (the others pull in pandas, sympy, the app's
# data layer: seconds of start-up the plan command does not need)
ALONE = {"plan": "plan"}


def _register(args: list[str] | None = None) -> None:
    import importlib

    if args and args[0] in ALONE and "--help" not in args:
        importlib.import_module(f"model.cli.{ALONE[args[0]]}")
        return
    from model.cli import calibrate, catalogue, estimate, plan, scenarios, tools, train  # noqa: F401  (commands register themselves on `app`)


def main(argv: list[str] | None = None) -> int:
    """Entry point: runs the app and turns every input error into one line on stderr and exit status 2.

    Anything else is a bug: one line naming it and exit status 1 (RIDGEPLAN_DEBUG=1 shows the traceback)."""
    args = sys.argv[1:] if argv is None else argv
    _register(args)
    try:
        result = app(args=args, standalone_mode=False, prog_name="ridgeplan")
        sys.stdout.flush()  # a reader that already went away shows here, inside the handler, not at exit
        return int(result or 0)
    except RidgeplanError as err:
        print(f"error: {err.one_line()}", file=sys.stderr)
        return 2
    except cx.NoSuchOption as err:
        print(f"error: {err.option_name}: no such option{_possibilities(err)}", file=sys.stderr)
        return 2
    except cx.BadParameter as err:
        print(f"error: {_one_line(err.format_message())}", file=sys.stderr)
        return 2
    except cx.UsageError as err:
        if isinstance(err, cx.NoArgsIsHelpError):
            print(err.format_message())
            return 0
        print(f"error: {_one_line(err.format_message())}", file=sys.stderr)
        return 2
    except cx.ClickException as err:  # FileError and the rest of the installed typer's own errors
        print(f"error: {_one_line(err.format_message())}", file=sys.stderr)
        return 2
    except typer.Abort:
        print("error: aborted", file=sys.stderr)
        return 2
    except typer.Exit as err:
        return int(err.exit_code)
    except BrokenPipeError:  # the reader went away (`ridgeplan validate | head -1`): stop quietly
        _silence_stdout()
        return 0
    except Exception as err:  # a bug: reported as one line instead of a traceback
        if os.environ.get("RIDGEPLAN_DEBUG"):
            raise
        print(f"internal error: {type(err).__name__}: {_one_line(str(err))} (a bug in ridgeplan; "
              "RIDGEPLAN_DEBUG=1 shows the traceback)", file=sys.stderr)
        return 1


def _one_line(text: str) -> str:
    return " ".join(text.split())


def _silence_stdout() -> None:
    """Point stdout at /dev/null so the interpreter's final flush does not fail on the closed pipe."""
    with contextlib.suppress(OSError, ValueError):
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())


def _possibilities(err) -> str:
    return f" (did you mean {', '.join(err.possibilities)}?)" if err.possibilities else ""


def run() -> None:  # console-script shim
    sys.exit(main())

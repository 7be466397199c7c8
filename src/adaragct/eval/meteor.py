"""METEOR 1.5 with pycocoevalcap's jar, driven here so that it can neither hang nor lie.

Why we speak to the jar ourselves instead of calling ``pycocoevalcap.meteor.Meteor``:

1. Its ``compute_score`` keeps its lock when it raises, and ``Meteor.__del__`` waits on that lock, so any failure
   (a newline in a report breaks the one-line protocol, a lone surrogate cannot be encoded, Java dies on a 5 MB
   report) left the interpreter hung at exit after printing the traceback.
2. It has no time limit: a stalled JVM blocks ``readline`` for ever.
3. It pipes Java's stderr and never reads it, so the reason Java died is lost (and a JVM that writes more than
   a pipe's buffer to stderr would block).

We start the same jar with the same command line, in the same folder, send byte for byte the lines pycocoevalcap
sends for ordinary text and read the same answers, so the numbers are pycocoevalcap's
(``tests/eval/test_meteor.py`` compares them on real reports). The protocol (``-stdio``) is one request per line,
fields separated by ``|||``:

- ``SCORE ||| reference ||| hypothesis`` -> one line of sufficient statistics;
- ``EVAL ||| stats_1 ||| ... ||| stats_n`` -> n lines of segment scores, then one line with the corpus score.

So every text must be one line without ``|||``: :func:`protocol_text` makes it so, and leaves ordinary text as it is.
Every failure ends the Java process and raises :class:`MeteorUnavailable` with the reason; callers report METEOR as
unavailable (null, with that reason) rather than a number.
"""

from __future__ import annotations

import contextlib
import re
import shutil
import subprocess
import tempfile
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import IO

from tqdm.auto import tqdm

# Longest wait for one answer of the Java scorer. The first answer includes starting the JVM and loading the
# paraphrase table (~5-20 s on 2 busy cores); later ones take ~0.1 s per ~300-word report pair. The limit bounds a
# stall, not the whole run, so large test sets never hit it.
METEOR_TIMEOUT_S = 120.0

# C0 and C1 control characters (newline, carriage return, tab, NUL, ...) and the Unicode line and paragraph
# separators: Java's readLine ends a request at \n or \r, the rest are not report text
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]")
_SURROGATE = re.compile(
    "[\ud800-\udfff]"
)  # unpaired surrogates (valid JSON "\ud800"), which UTF-8 cannot encode


class MeteorUnavailable(RuntimeError):
    """METEOR could not be computed; the message is the reason, for the console and the metrics JSON."""


def protocol_text(text: str) -> str:
    """``text`` as one field of a METEOR request: control characters and line separators become spaces, unpaired
    surrogates become U+FFFD and ``|||`` (the field separator) is removed.

    Ordinary text (none of these) is returned unchanged, so its score is the one pycocoevalcap gives.
    """
    text = _CONTROL.sub(" ", text)
    text = _SURROGATE.sub("\ufffd", text)
    return text.replace("|||", "")


def score_request(prediction: str, reference: str) -> str:
    """The ``SCORE`` line for one pair, as pycocoevalcap's ``Meteor._stat`` writes it.

    pycocoevalcap removes ``|||`` and halves runs of spaces in the hypothesis only; we do exactly that, after
    :func:`protocol_text` on both texts.
    """
    hypothesis = protocol_text(prediction).replace("  ", " ")
    return " ||| ".join(("SCORE", protocol_text(reference), hypothesis))


def _jar() -> Path:
    try:
        from pycocoevalcap.meteor import meteor as coco_meteor
    except ImportError as err:
        raise MeteorUnavailable(
            "pycocoevalcap is not installed (pip install pycocoevalcap, or the dev extra)"
        ) from err
    jar = Path(coco_meteor.__file__).resolve().with_name(coco_meteor.METEOR_JAR)
    if not jar.is_file():
        raise MeteorUnavailable(f"{jar} is missing (reinstall pycocoevalcap)")
    return jar


class _Watchdog:
    """Kills ``proc`` when one request stays unanswered for ``timeout_s``; ``progress()`` restarts the clock."""

    def __init__(self, proc: subprocess.Popen, timeout_s: float) -> None:
        self._proc = proc
        self._timeout_s = timeout_s
        self._deadline = time.monotonic() + timeout_s
        self._stop = threading.Event()
        self.fired = False
        self._thread = threading.Thread(target=self._watch, name="meteor-watchdog", daemon=True)
        self._thread.start()

    def progress(self) -> None:
        self._deadline = time.monotonic() + self._timeout_s

    def _watch(self) -> None:
        while not self._stop.wait(0.2):
            if time.monotonic() > self._deadline:
                self.fired = True
                self._proc.kill()
                return

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()


class _JavaScorer:
    """One ``meteor-1.5.jar -stdio`` process: ask a line, get a line, each answer within the time limit."""

    def __init__(self, java: str, jar: Path, stderr: IO[bytes], timeout_s: float) -> None:
        # pycocoevalcap's command line, run in the jar's folder (it finds its data/ there)
        command = [java, "-jar", "-Xmx2G", jar.name, "-", "-", "-stdio", "-l", "en", "-norm"]
        try:
            self.proc = subprocess.Popen(
                command, cwd=jar.parent, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=stderr
            )
        except OSError as err:
            raise MeteorUnavailable(f"{java} could not be started ({err})") from err
        self.watchdog = _Watchdog(self.proc, timeout_s)

    def send(self, line: str) -> None:
        self.watchdog.progress()
        self.proc.stdin.write(f"{line}\n".encode())
        self.proc.stdin.flush()

    def receive(self) -> str:
        self.watchdog.progress()
        answer = self.proc.stdout.readline()
        if not answer:
            raise EOFError("the Java scorer closed its output")
        return answer.decode().strip()

    def close(self) -> None:
        """End the process whatever state it is in (pycocoevalcap's ``__del__`` kills it too)."""
        self.watchdog.stop()
        self.proc.kill()
        self.proc.wait()
        for pipe in (self.proc.stdin, self.proc.stdout):
            with contextlib.suppress(OSError):  # BrokenPipe flushing what Java never read: it is gone anyway
                pipe.close()


def _numbers(line: str, what: str) -> list[float]:
    try:
        values = [float(x) for x in line.split()]
    except ValueError:
        values = []
    if not values:
        raise ValueError(f"unexpected answer {line[:80]!r} to {what}")
    return values


def _java_message(log: IO[bytes]) -> str:
    """The last line of Java's stderr that is not a stack frame (``java.lang.OutOfMemoryError: ...``)."""
    log.seek(0)
    lines = [x.strip() for x in log.read().decode(errors="replace").splitlines()]
    messages = [x for x in lines if x and not x.startswith(("at ", "..."))]
    return messages[-1][:200] if messages else "no message on stderr"


def compute_meteor(
    predictions: Sequence[str],
    references: Sequence[str],
    *,
    timeout_s: float = METEOR_TIMEOUT_S,
    progress: bool = False,
) -> float:
    """Corpus METEOR 1.5 of pycocoevalcap (one reference per prediction), on the texts as given.

    Args:
        predictions: generated reports (normalised by the caller, see ``text_metrics.normalize_text``).
        references: their reference reports, aligned by position.
        timeout_s: longest wait for one answer of the Java scorer (JVM start included in the first).
        progress: a progress bar over the pairs.

    Raises:
        MeteorUnavailable: no Java, no pycocoevalcap, no pairs, the scorer died, answered garbage or stalled; the
            Java process is ended in every case.
    """
    return meteor_scores(predictions, references, timeout_s=timeout_s, progress=progress)[0]


def meteor_scores(
    predictions: Sequence[str],
    references: Sequence[str],
    *,
    timeout_s: float = METEOR_TIMEOUT_S,
    progress: bool = False,
) -> tuple[float, list[float]]:
    """The corpus METEOR and the per-pair segment scores (pycocoevalcap's ``compute_score`` pair); see
    :func:`compute_meteor`."""
    if len(predictions) != len(references):
        raise ValueError(f"{len(predictions)} predictions but {len(references)} references")
    if not predictions:
        raise MeteorUnavailable("no report pairs to score")
    java = shutil.which("java")
    if java is None:
        raise MeteorUnavailable("no java on PATH (METEOR runs pycocoevalcap's Java scorer)")
    requests = [score_request(p, r) for p, r in zip(predictions, references, strict=True)]
    with tempfile.TemporaryFile() as java_log:
        scorer = _JavaScorer(java, _jar(), java_log, timeout_s)
        where, failure = "the start", None
        try:
            stats = []
            for i, request in enumerate(
                tqdm(requests, desc="METEOR", unit="report", disable=not progress, leave=False)
            ):
                where = f"pair {i + 1} of {len(requests)}"
                scorer.send(request)
                stats.append(scorer.receive())
                _numbers(stats[-1], where)  # sufficient statistics: a row of numbers
            where = "the final EVAL"
            scorer.send(" ||| ".join(("EVAL", *stats)))
            segments = [_numbers(scorer.receive(), f"segment score {i + 1}")[0] for i in range(len(requests))]
            score = _numbers(scorer.receive(), where)[0]
        # BrokenPipe writing, end of output reading, an answer that is not numbers
        except (OSError, EOFError, ValueError) as err:
            failure = err
        finally:
            scorer.close()
        if failure is not None:
            raise MeteorUnavailable(_reason(failure, scorer, where, java_log, timeout_s)) from failure
    if not all(0.0 <= x <= 1.0 for x in (score, *segments)):
        raise MeteorUnavailable(f"the Java scorer returned a score outside [0, 1] (corpus {score})")
    return score, segments


def _reason(
    failure: Exception, scorer: _JavaScorer, where: str, java_log: IO[bytes], timeout_s: float
) -> str:
    if scorer.watchdog.fired:
        return (
            f"the Java scorer gave no answer within {timeout_s:g} s at {where} "
            "(raise the METEOR time limit, or score without METEOR)"
        )
    if isinstance(failure, ValueError):  # Java answered, but not with numbers
        return f"the Java scorer failed at {where}: {failure}"
    return (
        f"the Java scorer stopped at {where} (exit code {scorer.proc.returncode}): {_java_message(java_log)}"
    )

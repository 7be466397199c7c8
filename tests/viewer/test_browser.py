"""The viewer page in a real browser: headless Chromium driven by Selenium opens a page built from real predictions,
filters the list, opens every volume and checks that each [RAG] mark sits at the start of the sentence written
after the retrieval and that the retrieved sentences shown are the trace's. Skips where no browser is installed
(``apt-get install chromium chromium-driver``; CI's .ci/run installs them)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from adaragct.constants import FINDINGS
from adaragct.eval.labelers import build_labeler
from adaragct.formats.tables import read_labels_csv
from adaragct.viewer import build_view, write_view
from adaragct.viewer.positions import sentence_spans
from tests.viewer.conftest import write_records

# the marks of the open volume: which retrieval, the character of the report text before it, its sentence
READ_MARKS = """
const box = document.getElementById("gen");
return [...box.querySelectorAll("mark.rag")].map((m) => {
  const before = document.createRange();
  before.setStart(box, 0);
  before.setEndBefore(m);
  const span = [...box.querySelectorAll(".rw")].find((s) => s.dataset.rets.split(",").includes(m.dataset.ret));
  return { ret: +m.dataset.ret, at: before.toString().length, sentence: span ? span.textContent : "" };
});
"""
READ_CARDS = """
return [...document.querySelectorAll(".ret")].map((card) => [...card.querySelectorAll(".ctx-row")].map((row) => ({
  text: row.querySelector(".ctx-text").textContent, id: row.querySelector(".ctx-id").textContent,
  score: row.querySelector(".ctx-score").dataset.score, src: row.querySelector(".ctx-src").textContent })));
"""


@pytest.fixture(scope="module")
def browser():
    pytest.importorskip("selenium.webdriver", reason="selenium is a dev dependency: pip install -e '.[dev]'")
    from adaragct.viewer.browser import INSTALL, find_chromium, headless_chromium

    found = find_chromium()
    if found is None:
        pytest.skip(f"no Chromium and chromedriver installed ({INSTALL})")
    driver = headless_chromium(*found)  # a given driver: nothing downloaded
    yield driver
    driver.quit()


def open_page(browser, path: Path) -> None:
    from selenium.webdriver.support.ui import WebDriverWait

    browser.get(path.resolve().as_uri())
    WebDriverWait(browser, 10).until(lambda d: d.execute_script("return window.viewerReady === true"))


def listed(browser) -> list[str]:
    """The ids of the listed rows, read in one script call: the list re-renders as filters apply, so element
    handles taken in one call can be stale in the next (seen on busy machines)."""
    return browser.execute_script(
        "return Array.from(document.querySelectorAll('.row'), r => r.getAttribute('data-id'))"
    )


def wait_listed(browser, expected: list[str]) -> None:
    from selenium.webdriver.support.ui import WebDriverWait

    WebDriverWait(browser, 5).until(lambda d: listed(d) == expected, message=f"list never became {expected}")


def open_volume(browser, volume_id: str) -> None:
    from selenium.webdriver.support.ui import WebDriverWait

    # one script call finds and clicks the row (a handle could go stale between two calls while the list renders)
    browser.execute_script("document.querySelector(`.row[data-id='${arguments[0]}']`).click()", volume_id)
    WebDriverWait(browser, 5).until(
        lambda d: d.find_element("id", "detail").get_attribute("data-id") == volume_id
    )


def mark_errors(marks: list[dict], record: dict) -> list[str]:
    """What is wrong with a page's marks for a record: each retrieval needs one mark at the first character written
    after it (its trace's char_offset, past the space), on the sentence that starts there."""
    text, log = record["generated_text"], record["retrieval_log"]
    errors = []
    if sorted(m["ret"] for m in marks) != list(range(len(log))):
        errors.append(f"{record['image']}: marks {[m['ret'] for m in marks]} for {len(log)} retrievals")
    for mark in marks:
        entry = log[mark["ret"]]
        start = len(text) - len(text[entry["char_offset"] :].lstrip())
        end = re.search(r"[.?!](?=\s|$)", text[start:])
        sentence = text[start : start + end.end()] if end else text[start:]
        if (mark["at"], mark["sentence"]) != (start, sentence):
            errors.append(
                f"{record['image']} [RAG] {mark['ret'] + 1}: at {mark['at']} {mark['sentence']!r}, "
                f"expected {start} {sentence!r}"
            )
    return errors


@pytest.fixture(scope="module")
def page(tmp_path_factory, predictions, labels_csv) -> Path:
    return write_view(
        build_view(predictions, labels_csv=labels_csv), tmp_path_factory.mktemp("b") / "view.html"
    )


def test_filters_select_the_volumes_they_say(browser, page, records, labels_csv) -> None:
    from selenium.webdriver.support.ui import Select

    open_page(browser, page)
    ids = [r["image"] for r in records]
    wait_listed(browser, ids)
    assert browser.find_element("id", "count").text == f"{len(ids)} of {len(ids)} volumes"

    search = browser.find_element("id", "q")
    search.send_keys("valid_2")
    wait_listed(browser, [r["image"] for r in records if "valid_2" in r["image"] + r["generated_text"]])
    search.clear()
    search.send_keys("fibrotic sequela")
    wait_listed(
        browser,
        [
            r["image"]
            for r in records
            if "fibrotic sequela" in (r["generated_text"] + r["reference_text"]).lower()
        ],
    )
    search.clear()
    wait_listed(browser, ids)

    browser.find_element("id", "rmax").send_keys("2")
    wait_listed(browser, [r["image"] for r in records if r["retrieval_count"] <= 2])
    browser.find_element("id", "rmax").clear()
    wait_listed(browser, ids)

    truth = read_labels_csv(labels_csv).loc[ids].to_numpy().astype(bool)
    generated = build_labeler("rule").labels([r["generated_text"] for r in records]).astype(bool)
    results = {"fn": truth & ~generated, "tp": truth & generated, "fp": generated & ~truth}
    # a finding that some reports found and others missed (Lymphadenopathy: 1 found, 3 missed, 1 false alarm)
    finding = next(j for j in range(len(FINDINGS)) if all(results[k][:, j].any() for k in results))
    Select(browser.find_element("id", "finding")).select_by_value(str(finding))
    for status, hits in results.items():
        Select(browser.find_element("id", "status")).select_by_value(status)
        wait_listed(browser, [vid for vid, hit in zip(ids, hits[:, finding], strict=True) if hit])
    Select(browser.find_element("id", "finding")).select_by_value("")  # any finding: a miss of any of the 18
    Select(browser.find_element("id", "status")).select_by_value("fn")
    wait_listed(browser, [vid for vid, row in zip(ids, results["fn"], strict=True) if row.any()])
    Select(browser.find_element("id", "finding")).select_by_value(str(finding))
    assert browser.find_element("css selector", "#finding option:checked").text == FINDINGS[finding]


def test_marks_and_retrieved_sentences_are_the_traces(browser, page, records) -> None:
    open_page(browser, page)
    checked = 0
    for record in records:
        open_volume(browser, record["image"])
        assert browser.find_element("id", "gen").text.replace("\n", " ") == record["generated_text"]
        assert mark_errors(browser.execute_script(READ_MARKS), record) == []
        cards = browser.execute_script(READ_CARDS)
        assert len(cards) == len(record["retrieval_log"])
        for card, entry in zip(cards, record["retrieval_log"], strict=True):
            assert [c["text"] for c in card] == entry.get("context", [])
            assert [c["id"] for c in card] == entry.get("sentence_ids", [])
            assert [float(c["score"]) for c in card] == entry.get("scores", [])
            assert [c["src"] for c in card] == [
                re.sub(r"_s\d+$", "", s) for s in entry.get("sentence_ids", [])
            ]
            checked += len(card)
    assert checked >= 60


def test_a_mark_on_the_wrong_sentence_is_caught(browser, tmp_path, predictions, records) -> None:
    """The check above fails when a mark is moved to the next sentence (the page itself, not the check, is wrong)."""
    doc = build_view(predictions)
    volume = doc["volumes"][2]
    record = records[2]
    ret = volume["rets"][1]
    spans = sentence_spans(record["generated_text"])
    ret["s"], ret["e"] = spans[[s for s, _ in spans].index(ret["s"]) + 1]
    open_page(browser, write_view(doc, tmp_path / "wrong.html"))
    open_volume(browser, record["image"])
    errors = mark_errors(browser.execute_script(READ_MARKS), record)
    assert len(errors) == 1 and "[RAG] 2" in errors[0], errors


def test_a_long_list_keeps_only_the_rows_in_view(browser, tmp_path, records) -> None:
    """600 volumes: the list holds the rows on screen, scrolling to the end shows the last volume, and it opens."""
    many = [r | {"image": f"{r['image']}_{n:03d}"} for n in range(75) for r in records]
    page = write_view(build_view(write_records(tmp_path / "p.jsonl", many)), tmp_path / "many.html")
    open_page(browser, page)
    assert browser.find_element("id", "count").text == "600 of 600 volumes"
    assert 10 <= len(listed(browser)) <= 60
    browser.execute_script("const l = document.getElementById('list'); l.scrollTop = l.scrollHeight;")
    from selenium.webdriver.support.ui import WebDriverWait

    WebDriverWait(browser, 5).until(lambda d: many[-1]["image"] in listed(d))
    assert len(listed(browser)) <= 60
    open_volume(browser, many[-1]["image"])
    assert mark_errors(browser.execute_script(READ_MARKS), many[-1]) == []

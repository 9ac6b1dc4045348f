"""The web page in a real browser: Debian's headless Chromium driven by Playwright (the
pinned Python package; its own browser download cannot work here). Against a running demo
(scripts/demo --browser-test starts one), it signs in on the local issuer's page, uploads
photos through the page (the presigned POST straight to S3), waits until every photo's
record is DONE and all its variants have loaded, checks that a file that is not an image is
refused with its code, and saves a screenshot.

    .venv/bin/python tests/browser/upload_test.py WEB_URL SCREENSHOT PHOTO...

Exits non-zero with the reason on the first failed expectation.
"""
import os
import sys
import tempfile
import time

from playwright.sync_api import sync_playwright

# As the machines' notes say Chromium must run here: no sandbox as root, no GPU, and no
# background networking (this machine has no network beyond the package registries).
CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]
TIMEOUT_MS = 120_000


def main(web_url, screenshot, photos):
    names = [os.path.basename(p) for p in photos]
    not_an_image = os.path.join(tempfile.mkdtemp(), "notes.txt")
    with open(not_an_image, "w") as f:
        f.write("These are notes, not a photo.\n")
    started = time.monotonic()
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", headless=True, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1280, "height": 1000})
        errors = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.goto(web_url)

        # Sign in on the issuer's page (Cognito's hosted UI in AWS) and come back.
        page.click("#sign-in")
        page.wait_for_selector("#username", timeout=TIMEOUT_MS)
        page.fill("#username", "browser-test")
        page.click("button[type=submit]")
        page.wait_for_selector("#upload:not([hidden])", timeout=TIMEOUT_MS)
        who = page.text_content("#who")
        assert who == "browser-test", f"signed in as {who!r}"

        page.set_input_files("#file-input", photos + [not_an_image])

        # The refused file: its card says why, with the daemon's code.
        refused = page.wait_for_selector('.photo[data-status="REFUSED"]', timeout=TIMEOUT_MS)
        assert refused.get_attribute("data-code") == "unsupported-format", refused.get_attribute("data-code")
        assert "unsupported-format" in refused.inner_text()

        # Every photo: DONE, every variant image loaded (naturalWidth > 0).
        for name in names:
            card = f'.photo[data-name="{name}"]'
            page.wait_for_selector(f'{card}[data-status="DONE"]', timeout=TIMEOUT_MS)
            # The page loads variants lazily, as a user scrolls to them.
            page.locator(card).first.scroll_into_view_if_needed(timeout=TIMEOUT_MS)
            page.wait_for_function(
                """(card) => {
                    const imgs = [...document.querySelectorAll(card + ' .variant img')];
                    return imgs.length > 0 && imgs.every((i) => i.complete && i.naturalWidth > 0);
                }""",
                arg=card,
                timeout=TIMEOUT_MS,
            )
            variants = page.eval_on_selector_all(f"{card} .variant img", "imgs => imgs.map(i => [i.naturalWidth, i.src])")
            facts = page.inner_text(f"{card} .facts")
            assert "dimensions" in facts and "GPS" in facts, facts
            print(f"  {name}: DONE, {len(variants)} variants loaded ({', '.join(str(w) for w, _ in variants)} px wide)")
        assert not errors, f"errors on the page: {errors}"
        page.evaluate("window.scrollTo(0, 0)")
        page.screenshot(path=screenshot, full_page=True)
        browser.close()
    print(f"browser test: signed in, {len(names)} photos uploaded and shown with their variants, "
          f"1 refused file, in {time.monotonic() - started:.1f} s; screenshot {screenshot}")


if __name__ == "__main__":
    if len(sys.argv) < 4:
        sys.exit(__doc__)
    try:
        main(sys.argv[1], sys.argv[2], sys.argv[3:])
    except AssertionError as e:
        sys.exit(f"browser test FAILED: {e}")

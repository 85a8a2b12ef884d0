#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
# Tests for scripts/rust-virtiofsd.sh without network: the trixie apt source derived from
# apt configurations made here (deb822 and one-line), the refusal without a bookworm entry,
# a clear failure and no wrapper when the derived source cannot be reached (a file: URI
# with no archive), --check on an empty cache, and, where the default cache holds a fetched
# virtiofsd (scripts/setup.sh fetches it), that --check accepts it and it runs.
import os
import re
import subprocess
import tempfile
import unittest

SCRIPT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "scripts",
                      "rust-virtiofsd.sh")
KEYRING = "/usr/share/keyrings/debian-archive-keyring.gpg"


def run(*args, apt_etc=None, env_extra=None):
    env = dict(os.environ)
    if apt_etc is not None:
        env["VDH_APT_ETC"] = apt_etc
    env.update(env_extra or {})
    return subprocess.run(["bash", SCRIPT, *args], capture_output=True, text=True, env=env,
                          timeout=120)


def stanza_fields(text):
    """Key -> value of the non-comment lines of one deb822 stanza."""
    fields = {}
    for line in text.splitlines():
        if line.startswith("#") or ":" not in line:
            continue
        k, v = line.split(":", 1)
        fields[k.strip()] = v.strip()
    return fields


class RustVirtiofsdTest(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory()
        self.dir = self.tmp.name
        self.apt = os.path.join(self.dir, "apt")
        os.makedirs(os.path.join(self.apt, "sources.list.d"))

    def tearDown(self):
        self.tmp.cleanup()

    def write(self, rel, text):
        with open(os.path.join(self.apt, rel), "w") as f:
            f.write(text)

    def test_source_from_deb822_keeps_uris_components_and_key(self):
        self.write("sources.list.d/security.sources",
                   "Types: deb\nURIs: file:/srv/mirror/debian-security\n"
                   "Suites: bookworm-security\nComponents: main\nSigned-By: " + KEYRING + "\n")
        self.write("sources.list.d/debian.sources",
                   "Types: deb\n# a comment\nURIs: file:/srv/mirror/debian\n"
                   "Suites: bookworm bookworm-updates\nComponents: main contrib\n"
                   "Signed-By: " + KEYRING + "\n")
        p = run("--print-source", apt_etc=self.apt)
        self.assertEqual(p.returncode, 0, p.stderr)
        f = stanza_fields(p.stdout)
        self.assertEqual(f, {"Types": "deb", "URIs": "file:/srv/mirror/debian", "Suites": "trixie",
                             "Components": "main contrib", "Signed-By": KEYRING})

    def test_source_from_one_line_entry(self):
        self.write("sources.list",
                   "# comment\ndeb [signed-by=" + KEYRING + "] file:/srv/mirror/debian bookworm "
                   "main\n")
        p = run("--print-source", apt_etc=self.apt)
        self.assertEqual(p.returncode, 0, p.stderr)
        f = stanza_fields(p.stdout)
        self.assertEqual(f["URIs"], "file:/srv/mirror/debian")
        self.assertEqual(f["Suites"], "trixie")
        self.assertEqual(f["Components"], "main")
        self.assertEqual(f["Signed-By"], KEYRING)

    def test_no_bookworm_entry_is_refused(self):
        self.write("sources.list.d/other.sources",
                   "Types: deb\nURIs: file:/srv/mirror/other\nSuites: nodistro\nComponents: main\n")
        p = run("--print-source", apt_etc=self.apt)
        self.assertEqual(p.returncode, 1)
        self.assertEqual(p.stdout, "")
        self.assertIn("no apt source with suite 'bookworm'", p.stderr)

    def test_unreachable_trixie_fails_clearly_and_leaves_no_wrapper(self):
        mirror = os.path.join(self.dir, "empty-mirror")
        os.makedirs(mirror)
        self.write("sources.list.d/debian.sources",
                   "Types: deb\nURIs: file:" + mirror + "\nSuites: bookworm\nComponents: main\n"
                   "Signed-By: " + KEYRING + "\n")
        cache = os.path.join(self.dir, "cache")
        p = run("--cache", cache, apt_etc=self.apt)
        self.assertEqual(p.returncode, 1, p.stderr)
        self.assertEqual(p.stdout, "")
        last = p.stderr.strip().splitlines()[-1]
        self.assertIn("Debian 13 (trixie) is not reachable through file:" + mirror, last)
        self.assertFalse(os.path.exists(os.path.join(cache, "virtiofsd")))
        self.assertFalse(os.path.exists(os.path.join(cache, "root")))

    def test_check_on_empty_cache_says_not_fetched(self):
        cache = os.path.join(self.dir, "cache")
        p = run("--check", "--cache", cache)
        self.assertEqual(p.returncode, 1)
        self.assertEqual(p.stdout, "")
        self.assertIn("not fetched: no " + os.path.join(cache, "virtiofsd"), p.stderr)
        self.assertFalse(os.path.exists(cache), "--check must not create the cache")

    def test_check_rejects_a_wrapper_that_is_not_virtiofsd(self):
        cache = os.path.join(self.dir, "cache")
        os.makedirs(cache)
        wrapper = os.path.join(cache, "virtiofsd")
        with open(wrapper, "w") as f:
            f.write("#!/bin/sh\necho something else\n")
        os.chmod(wrapper, 0o755)
        p = run("--check", "--cache", cache)
        self.assertEqual(p.returncode, 1)
        self.assertIn("--version printed 'something else'", p.stderr)


def default_cache():
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.environ.get("VDH_RUST_VIRTIOFSD_CACHE",
                          os.path.join(base, "vdhost", "rust-virtiofsd"))


@unittest.skipUnless(os.path.exists(os.path.join(default_cache(), "virtiofsd")),
                     "no fetched Rust virtiofsd (scripts/rust-virtiofsd.sh)")
class FetchedRustVirtiofsdTest(unittest.TestCase):
    def test_check_accepts_the_cache_and_the_wrapper_runs(self):
        p = run("--check")
        self.assertEqual(p.returncode, 0, p.stderr)
        wrapper = p.stdout.strip()
        self.assertEqual(wrapper, os.path.join(default_cache(), "virtiofsd"))
        v = subprocess.run([wrapper, "--version"], capture_output=True, text=True, timeout=30)
        self.assertEqual(v.returncode, 0, v.stderr)
        self.assertRegex(v.stdout, re.compile(r"^virtiofsd \d+\.\d+\.\d+", re.M))
        # The trixie libraries, not the host's: the loader resolves all of them in the cache.
        with open(wrapper) as f:
            self.assertIn("--inhibit-cache", f.read())


if __name__ == "__main__":
    unittest.main()

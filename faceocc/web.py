"""Polite, bounded HTTP fetching: one pooled session, timeouts, retries, per-host pacing, robots rules.

Every fetch ends as a `Fetched` with an outcome word (`ok`, `http_404`, `timeout`, `robots_disallowed`, ...) and a
one-line detail, never as an exception: a scrape of thousands of URLs must finish and say what happened to each.
requests/urllib3 retry connection errors and 5xx with exponential backoff; this module adds what they lack:
a pace per host shared by all worker threads, `429 Retry-After` that slows the whole host down, robots.txt
(RFC 9309) and `X-Robots-Tag`, manual redirects (each hop is checked against robots and the pace), and a cap on
body size and total download time.
"""

from __future__ import annotations

import email.utils
import logging
import math
import socket
import threading
import time
import urllib.robotparser
from dataclasses import dataclass
from urllib.parse import urljoin, urlsplit

import requests
from requests.adapters import HTTPAdapter
from urllib3.exceptions import HTTPError as Urllib3Error
from urllib3.exceptions import MaxRetryError, ReadTimeoutError, ResponseError
from urllib3.util.retry import Retry

from faceocc.config import bounded

log = logging.getLogger(__name__)

DEFAULT_USER_AGENT = "faceocc-scraper/0.1 (face occlusion research data; +https://github.com/faceocc/faceocc)"
ROBOTS_MAX_BYTES = 500 * 1024  # RFC 9309: crawlers must parse at least 500 KiB; more is not read
# X-Robots-Tag / <meta name=robots> directives this scraper acts on; others (nosnippet, ...) do not concern it.
KNOWN_DIRECTIVES = frozenset({"all", "none", "noindex", "nofollow", "noimageindex", "noarchive", "nosnippet",
                              "notranslate", "indexifembedded", "max-snippet", "max-image-preview",
                              "max-video-preview", "unavailable_after"})


@dataclass(frozen=True)
class WebConfig:
    user_agent: str = DEFAULT_USER_AGENT
    connect_timeout_s: float = bounded(5.0, gt=0)
    read_timeout_s: float = bounded(20.0, gt=0)      # silence between two packets
    total_timeout_s: float = bounded(60.0, gt=0)     # a URL's whole life, retries included
    retries: int = bounded(3, ge=0)                  # connection errors, 5xx and 429 each get this many more tries
    backoff_s: float = bounded(0.5, ge=0)            # first retry waits this long, then doubling
    max_retry_after_s: float = bounded(120.0, ge=0)  # a 429/503 asking for a longer wait ends the URL instead
    # seconds between requests to one host; robots.txt's Crawl-delay may raise it
    per_host_interval_s: float = bounded(1.0, ge=0)
    max_bytes: int = bounded(20_000_000, ge=1)       # response bodies above this end as too_large
    max_redirects: int = bounded(5, ge=0)
    obey_robots: bool = True
    workers: int = bounded(4, ge=1)                  # parallel downloads (across hosts; each host keeps its own pace)


@dataclass(frozen=True)
class Fetched:
    url: str
    final_url: str
    outcome: str          # "ok" or why not
    detail: str = ""
    status: int | None = None
    content_type: str = ""
    body: bytes = b""
    directives: frozenset[str] = frozenset()  # X-Robots-Tag directives that apply to this scraper

    @property
    def ok(self) -> bool:
        return self.outcome == "ok"


def robot_directives(values: list[str], agent_token: str) -> frozenset[str]:
    """Directives from X-Robots-Tag header values (or meta robots contents) that apply to `agent_token`.

    A value may name a bot (`otherbot: noindex`); such values apply only when the name is ours.
    """
    found: set[str] = set()
    for value in values:
        head, sep, rest = value.partition(":")
        if sep and head.strip().lower() not in KNOWN_DIRECTIVES:
            if head.strip().lower() != agent_token.lower():
                continue
            value = rest
        for part in value.split(","):
            word = part.strip().lower().split(":")[0].strip()
            if word:
                found.add(word)
    if "none" in found:
        found |= {"noindex", "nofollow"}
    return frozenset(found)


def agent_token(user_agent: str) -> str:
    """The product token robots.txt groups are matched against: 'faceocc-scraper' of 'faceocc-scraper/0.1 (...)'."""
    return user_agent.split("/")[0].split()[0]


def retry_after_seconds(value: str | None) -> float | None:
    """Retry-After as seconds from now (delta-seconds or an HTTP date), None when absent or unreadable."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    parsed = email.utils.parsedate_tz(value)
    if parsed is None:
        return None
    return max(0.0, email.utils.mktime_tz(parsed) - time.time())


# The deadline of the URL a thread is fetching: urllib3 retries inside one `session.get`, out of our sight,
# and `_DeadlineRetry` stops them there instead of letting 3 read timeouts of 20 s pass a 60 s budget.
_deadline = threading.local()


class _DeadlineRetry(Retry):
    """urllib3's Retry that gives up when the next try could not start (backoff included) before the deadline."""

    def increment(self, method=None, url=None, response=None, error=None, _pool=None, _stacktrace=None):
        new = super().increment(method, url, response, error, _pool, _stacktrace)
        at = getattr(_deadline, "at", None)
        if at is not None and time.monotonic() + new.get_backoff_time() >= at:
            raise MaxRetryError(_pool, url, error or ResponseError("total_timeout_s reached")) from error
        return new


def make_session(config: WebConfig) -> requests.Session:
    """A pooled session whose adapter retries connection errors and 500/502/504 with exponential backoff."""
    session = requests.Session()
    # 429 and 503 are not retried here: Fetcher.get handles them so that a Retry-After pauses the whole host
    # and a wait longer than max_retry_after_s ends the URL instead of stalling a worker.
    retry = _DeadlineRetry(total=config.retries, connect=config.retries, read=config.retries, status=config.retries,
                  other=0, redirect=0, backoff_factor=config.backoff_s, status_forcelist=(500, 502, 504),
                  allowed_methods=frozenset({"GET", "HEAD"}), raise_on_status=False, raise_on_redirect=False,
                  respect_retry_after_header=False)
    adapter = HTTPAdapter(max_retries=retry, pool_connections=max(4, config.workers),
                          pool_maxsize=max(4, config.workers))
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    session.headers["User-Agent"] = config.user_agent
    return session


class _Host:
    """What one scheme://host shares across threads: its pace and its robots.txt verdict."""

    def __init__(self, interval: float):
        self.lock = threading.Lock()
        self.robots_lock = threading.Lock()
        self.interval = interval
        self.next_slot = 0.0
        self.robots: urllib.robotparser.RobotFileParser | None = None
        self.robots_failure: tuple[str, str] | None = None  # (outcome, detail) when robots.txt could not be had
        self.robots_checked = False


class Fetcher:
    """GET with the policy above; thread-safe, so one instance serves all download workers."""

    def __init__(self, config: WebConfig, session: requests.Session | None = None):
        self.config = config
        self.session = session or make_session(config)
        self.agent = agent_token(config.user_agent)
        self._hosts: dict[str, _Host] = {}
        self._hosts_lock = threading.Lock()

    def close(self) -> None:
        self.session.close()

    # -- public ---------------------------------------------------------------------------------------------

    def get(self, url: str, accept: str = "*/*", obey_robots: bool | None = None) -> Fetched:
        """Fetch `url`, following redirects; `obey_robots=False` for resources a user named explicitly."""
        obey = self.config.obey_robots if obey_robots is None else obey_robots
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            return Fetched(url, url, "bad_url", "only absolute http(s) URLs are fetched")
        current, seen, hops, rate_limited = url, {url}, 0, 0
        # the URL's whole life (robots.txt, pacing, redirects, retries, body) ends at this deadline
        deadline = time.monotonic() + self.config.total_timeout_s
        late = f"not complete after web.total_timeout_s = {self.config.total_timeout_s:g} s (retries included)"
        while True:
            if obey:
                refusal = self._robots_refusal(current)
                if refusal:
                    return Fetched(url, current, *refusal)
            if not self._wait_for_slot(current, deadline):
                return Fetched(url, current, "timeout", late)
            remaining = deadline - time.monotonic()
            _deadline.at = deadline
            try:
                response = self.session.get(
                    current, stream=True, allow_redirects=False, headers={"Accept": accept},
                    timeout=(min(self.config.connect_timeout_s, remaining), min(self.config.read_timeout_s, remaining)))
            except requests.RequestException as err:
                outcome, detail = _classify_error(err)
                return Fetched(url, current, *(("timeout", late) if time.monotonic() >= deadline else
                                               (outcome, detail)))
            finally:
                _deadline.at = None
            with response:
                if response.is_redirect:
                    location = response.headers.get("Location", "")
                    target = urljoin(current, location)
                    if target in seen:
                        return Fetched(url, current, "redirect_loop", f"{current} redirects back to {target}",
                                       response.status_code)
                    hops += 1
                    if hops > self.config.max_redirects:
                        return Fetched(url, current, "too_many_redirects",
                                       f"more than {self.config.max_redirects} redirects", response.status_code)
                    seen.add(target)
                    current = target
                    continue
                if response.status_code in (429, 503):
                    wait = retry_after_seconds(response.headers.get("Retry-After"))
                    wait = self.config.backoff_s * 2 ** rate_limited if wait is None else wait
                    if rate_limited >= self.config.retries or wait > self.config.max_retry_after_s:
                        return Fetched(url, current, f"http_{response.status_code}",
                                       f"rate limited; Retry-After {wait:.0f} s"
                                       + (" exceeds web.max_retry_after_s" if wait > self.config.max_retry_after_s
                                          else f" after {rate_limited} retries"), response.status_code)
                    rate_limited += 1
                    self._slow_down(current, wait)  # every thread waits: the whole host asked for a pause
                    continue
                return self._read(url, current, response, deadline)

    # -- steps ----------------------------------------------------------------------------------------------

    def _read(self, url: str, current: str, response: requests.Response, deadline: float) -> Fetched:
        status = response.status_code
        content_type = response.headers.get("Content-Type", "").split(";")[0].strip().lower()
        if status != 200:
            return Fetched(url, current, f"http_{status}", f"HTTP {status} {response.reason or ''}".strip(), status,
                           content_type)
        directives = robot_directives(_header_values(response, "X-Robots-Tag"), self.agent)
        declared = response.headers.get("Content-Length", "")
        if declared.isdigit() and int(declared) > self.config.max_bytes:
            return Fetched(url, current, "too_large", f"Content-Length {declared} > {self.config.max_bytes} bytes",
                           status, content_type, directives=directives)
        late = Fetched(url, current, "timeout", f"body not complete after web.total_timeout_s = "
                       f"{self.config.total_timeout_s:g} s", status, content_type, directives=directives)
        # A read returns only when its chunk is full, so a body trickled a byte at a time would pass any deadline
        # checked between chunks: at the deadline a timer shuts the socket down, which ends the blocked read.
        watchdog = threading.Timer(max(0.0, deadline - time.monotonic()), _shut_down, (response,))
        watchdog.daemon = True
        watchdog.start()
        chunks, size = [], 0
        try:
            for chunk in response.iter_content(64 * 1024):
                size += len(chunk)
                if size > self.config.max_bytes:
                    return Fetched(url, current, "too_large", f"body exceeds {self.config.max_bytes} bytes",
                                   status, content_type, directives=directives)
                if time.monotonic() > deadline:
                    return late
                chunks.append(chunk)
        except (requests.RequestException, Urllib3Error, OSError) as err:
            if time.monotonic() >= deadline:
                return late
            if not isinstance(err, requests.RequestException):
                return Fetched(url, current, "connection_error", f"{type(err).__name__}: {err}"[:200], status,
                               content_type, directives=directives)
            outcome, detail = _classify_error(err)
            return Fetched(url, current, outcome, detail, status, content_type, directives=directives)
        finally:
            watchdog.cancel()
        if time.monotonic() >= deadline:  # the shut-down socket may read as a clean end of a body without length
            return late
        return Fetched(url, current, "ok", "", status, content_type, b"".join(chunks), directives)

    def _host(self, url: str) -> _Host:
        key = _host_key(url)
        with self._hosts_lock:
            if key not in self._hosts:
                self._hosts[key] = _Host(self.config.per_host_interval_s)
            return self._hosts[key]

    def _wait_for_slot(self, url: str, deadline: float = math.inf) -> bool:
        """Wait for the host's next free slot; False (and no slot taken) when it comes after `deadline`."""
        host = self._host(url)
        with host.lock:  # reserve the next slot, then sleep outside the lock
            now = time.monotonic()
            slot = max(now, host.next_slot)
            if slot >= deadline:
                return False
            host.next_slot = slot + host.interval
        if slot > now:
            time.sleep(slot - now)
        return True

    def _slow_down(self, url: str, seconds: float) -> None:
        host = self._host(url)
        with host.lock:
            host.next_slot = max(host.next_slot, time.monotonic() + seconds)

    def _robots_refusal(self, url: str) -> tuple[str, str] | None:
        host = self._host(url)
        with host.robots_lock:  # one robots.txt request per host, however many threads ask
            if not host.robots_checked:
                self._load_robots(url, host)
                host.robots_checked = True
        if host.robots_failure:
            return host.robots_failure
        if host.robots is not None and not host.robots.can_fetch(self.agent, url):
            return "robots_disallowed", f"robots.txt of {_host_key(url)} disallows {urlsplit(url).path or '/'}"
        return None

    def _load_robots(self, url: str, host: _Host) -> None:
        robots_url = _host_key(url) + "/robots.txt"
        self._wait_for_slot(url)
        try:
            with self.session.get(robots_url, stream=True,
                                  timeout=(self.config.connect_timeout_s, self.config.read_timeout_s)) as response:
                status = response.status_code
                text = response.raw.read(ROBOTS_MAX_BYTES, decode_content=True) if status == 200 else b""
        except requests.RequestException as err:
            outcome, detail = _classify_error(err)
            host.robots_failure = (outcome, f"robots.txt unreachable: {detail}")
            return
        except Urllib3Error as err:  # raised by the raw stream itself (reset, protocol, read timeout)
            host.robots_failure = ("robots_unreachable", f"robots.txt unreadable: {type(err).__name__}: {err}")
            return
        if 400 <= status < 500:
            return  # RFC 9309: robots.txt "unavailable" means no rules
        if status != 200:
            # RFC 9309: "unreachable" (5xx) means assume everything is disallowed
            host.robots_failure = ("robots_unreachable", f"robots.txt answered HTTP {status}")
            return
        parser = urllib.robotparser.RobotFileParser(robots_url)
        parser.parse(text.decode("utf-8", "replace").splitlines())
        host.robots = parser
        delay = parser.crawl_delay(self.agent)
        if delay:
            with host.lock:
                host.interval = max(host.interval, min(float(delay), self.config.max_retry_after_s))


def _shut_down(response: requests.Response) -> None:
    """End a blocked read from another thread: shutdown() wakes a recv that close() would leave waiting."""
    # urllib3 2 hands the socket to http.client once the headers are read: it lives under the body's reader
    reader = getattr(getattr(response.raw, "_fp", None), "fp", None)
    sock = getattr(getattr(reader, "raw", None), "_sock", None)
    if sock is None:
        sock = getattr(getattr(response.raw, "connection", None), "sock", None)
    try:
        if sock is not None:
            sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass  # already closed


def _host_key(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}".lower()


def _header_values(response: requests.Response, name: str) -> list[str]:
    raw = getattr(response.raw, "headers", None)
    if raw is not None and hasattr(raw, "getlist"):
        return list(raw.getlist(name))
    value = response.headers.get(name)
    return [value] if value else []


def _classify_error(err: requests.RequestException) -> tuple[str, str]:
    """(outcome, one-line detail) for an exception requests raised."""
    text = str(err).splitlines()[0][:200] if str(err) else type(err).__name__
    if isinstance(err, requests.Timeout):
        return "timeout", text
    if isinstance(err, requests.ConnectionError):
        # a read timeout while streaming the body arrives wrapped as a ConnectionError
        reason = err.args[0] if err.args else None
        if isinstance(reason, ReadTimeoutError) or "Read timed out" in text:
            return "timeout", text
        return "connection_error", text
    if isinstance(err, (requests.exceptions.InvalidURL, requests.exceptions.MissingSchema,
                        requests.exceptions.InvalidSchema)):
        return "bad_url", text
    return "request_error", text

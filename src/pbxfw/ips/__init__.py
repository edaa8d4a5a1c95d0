"""Intrusion prevention: log lines → failures → ban decisions (DESIGN §4).

The parts, in the order a line meets them:

* :mod:`.grammars` — one module per log source (``asterisk``, ``ssh``,
  ``web``), each a ``TABLE`` of rules (one frozen dataclass per message:
  triggers, pattern or parse function, event, jail). **A new message of a
  known program is one new row there** (and a fixture line).
* :mod:`.stamps` (time stamps and the line prefixes that carry them),
  :mod:`.addresses` (address fields), :mod:`.keys` (the dedup keys that
  pair Asterisk's NOTICE and SECURITY lines) — used by the grammars.
* :mod:`.recognisers` — :class:`~pbxfw.ips.recognisers.Recogniser`, the
  per-stream state and the dispatch to the grammar of a line's kind; it
  re-exports the public names of the parts.
* :mod:`.scanner` — the whole-file search (``scan_text`` / ``scan_bytes``)
  over the coarse triggers of the tables.
* :mod:`.scan` (``pbxfw ips scan``: files read in blocks by :mod:`.reading`,
  :mod:`.parallel` with :mod:`.workers` for big ones, the output lines of
  :mod:`.output`), :mod:`.detector` (failures → :class:`~pbxfw.ips.events.BanDecision`,
  parameters in :mod:`.params`), :mod:`.events` (the event types).

Recognisers' contract
---------------------
A recogniser turns log lines into :class:`~pbxfw.ips.events.Failure`
objects; the kinds (``asterisk_messages``, ``asterisk_security``, ``ssh``,
``web``) and their jails (``asterisk`` / ``ami``, ``ssh``, ``web``) are
listed in :mod:`.grammars`.

* The address is taken **only** from the field the program wrote for the
  remote party, never from text the client controls (SIP From/To, display
  names, Call-ID, User-Agent, account or session ids, dialled extension, the
  SSH user name, HTTP request) and never from ``LocalAddress``. Where the
  client controls text on *both* sides of the address field the line is
  parsed against the exact grammar the program writes; a line that still has
  two readings naming different addresses is ambiguous and yields nothing
  (we would rather miss one attempt than ban a third party).
* Normal signalling (``ChallengeSent``, ``SuccessfulAuth``, any
  ``Severity="Informational"`` event) is never a failure.
* ``Failure.time`` is the log's own time stamp as an aware UTC datetime.
  Stamps without a zone are local time of ``tz`` (default: the host's zone);
  stamps without a year get the year that puts them nearest ``reference``
  (so a December line read in January lands in the previous year).
* ``Failure.key`` pairs the NOTICE and the SECURITY line that Asterisk writes
  for one PJSIP/chan_sip/AMI failure so the detector counts it once; see
  :func:`~pbxfw.ips.keys.failure_key` and docs/ips-formats.md.
* ``Failure.event`` is a fixed description chosen by the rule, never text
  copied from the line, so it is safe to show anywhere.
* One SSH attempt gives one failure: the lines sshd and PAM write for it
  after the first (same sshd pid) yield nothing
  (:class:`~pbxfw.ips.grammars.ssh.SshAttempts`; the state is per
  recogniser, i.e. per file, across calls).
* A line longer than :data:`~pbxfw.ips.scanner.MAX_LINE` is never a failure.

Speed: a line is first tested with plain substring checks; a regex runs only
on lines that contain a trigger, and the whole-file search finds the coarse
triggers in a whole text so that lines without one cost no Python work at
all. Stamps are cached per second, addresses by field text and by bare
address. Figures: docs/benchmarks-ips.md.
"""

"""Audio regression: fingerprints of a render's lines and scenes, goldens on disk, and a tolerant comparison.

A fingerprint is a handful of numbers per line and per scene (duration, RMS/peak/loudness, a 20-band mean log-mel
spectrum, the sha256 of the exact samples, optionally the speaker x-vector) — small enough to commit as JSON and
review like code. `compare` says per line whether the audio is the same (digest equal), changed within tolerance
(float noise from another machine), changed (which measure, by how much), missing or new.

A line's identity across renders is (scene index, character, n-th line of that character in the scene) — never its
content key, so an edited line is reported as "changed", not as "missing" plus "new". Inside one scene and character
the lines of golden and current are aligned by their text, so deleting one line reports exactly that line missing.

Modules: `measure` (per-clip measures), `golden` (the fingerprint model, reading a render folder, golden files),
`compare` (verdicts per line, scene and speaker), `report` (JUnit XML and markdown).
"""

"""hide_secrets: API keys, tokens and passwords in a request are replaced by ``[REDACTED]`` before
the upstream sees them.

Two passes over every request text:

1. compiled patterns for today's key formats (OpenAI, Anthropic, Groq, AWS, GitHub, GitLab, Slack,
   Google, Hugging Face, JWTs, PEM private keys), which know where each secret starts and ends;
2. Yelp detect-secrets, line by line, in process: its keyword detector (``api_key = '…'``,
   ``password: …``) and its vendor detectors (Stripe, SendGrid, Twilio, Azure storage, …).

Only the secret *types* are logged, never the values. The detectors are built once per process.
"""
from __future__ import annotations

import re

from detect_secrets.filters.heuristic import (
    is_indirect_reference, is_not_alphanumeric_string, is_prefixed_with_dollar_sign, is_templated_secret,
)
from detect_secrets.plugins.keyword import CONFIG_DENYLIST_REGEX_TO_GROUP

from guardrails.base import Call, Guardrail, logger
from guardrails.texts import rewrite_request

REDACTED = "[REDACTED]"

# (secret type, literals one of which the secret contains, pattern): the whole match is the secret.
# Applied in this order; a pattern runs only on texts containing one of its literals (cheap).
KEY_PATTERNS: tuple[tuple[str, tuple[str, ...], str], ...] = (
    ("Private Key", ("PRIVATE KEY",), r"-----BEGIN[A-Z0-9 ]*PRIVATE KEY(?: BLOCK)?-----[\s\S]*?"
                                      r"(?:-----END[A-Z0-9 ]*PRIVATE KEY(?: BLOCK)?-----|\Z)"),
    ("JSON Web Token", ("eyJ",), r"\beyJ[A-Za-z0-9_-]{4,}\.eyJ[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]*"),
    ("Anthropic API Key", ("sk-ant-",), r"\bsk-ant-[A-Za-z0-9_-]{20,}"),
    ("OpenAI API Key", ("sk-",), r"\bsk-(?:proj|svcacct|admin|None)-[A-Za-z0-9_-]{20,}"),
    ("OpenAI API Key", ("sk-",), r"\bsk-[A-Za-z0-9_-]{20,}"),
    ("Groq API Key", ("gsk_",), r"\bgsk_[A-Za-z0-9]{20,}"),
    ("Stripe Access Key", ("k_live_", "k_test_"), r"\b[rs]k_(?:live|test)_[0-9A-Za-z]{24,}"),
    ("AWS Access Key", ("AKIA", "ASIA", "ABIA", "ACCA", "A3T"),
     r"\b(?:AKIA|ASIA|ABIA|ACCA|A3T[A-Z0-9])[A-Z0-9]{16}\b"),
    ("GitHub Token", ("ghp_", "gho_", "ghu_", "ghs_", "ghr_"), r"\b(?:ghp|gho|ghu|ghs|ghr)_[A-Za-z0-9]{30,}\b"),
    ("GitHub Token", ("github_pat_",), r"\bgithub_pat_[A-Za-z0-9_]{22,}"),
    ("GitLab Token", ("glpat-", "gldt-", "glft-", "glsoat-", "glrt-"),
     r"\b(?:glpat|gldt|glft|glsoat|glrt)-[A-Za-z0-9_-]{20,}"),
    ("Slack Token", ("xox",), r"\bxox[abposr]-[A-Za-z0-9-]{10,}"),
    ("Google API Key", ("AIza",), r"\bAIza[0-9A-Za-z_-]{35}"),
    ("Hugging Face Token", ("hf_",), r"\bhf_[A-Za-z0-9]{30,}"),
    # the words around it say it is one: only the group named "secret" is replaced
    ("AWS Secret Access Key", ("aws", "AWS"),
     r"(?i)aws[_\- ]?secret[_\- ]?(?:access[_\- ]?)?key\W{0,4}(?P<secret>[A-Za-z0-9/+]{40})(?![A-Za-z0-9/+])"),
)
# detect-secrets' vendor detectors, each with literals one of which the secret's line must contain
# (lower-case literals are looked for case-insensitively): a text without them skips the (slower)
# detector. Left out: the high-entropy detectors (every word of a prompt looks random enough),
# public IPs, and those whose formats KEY_PATTERNS cover with exact bounds (the GitHub, GitLab, JWT
# and private-key detectors report only a prefix or a header).
_CONTEXT_WORDS = ("key", "pw", "pass", "token", "secret")
DETECTORS: dict[str, tuple[str, ...]] = {
    "ArtifactoryDetector": ("AKC", "AP"), "AWSKeyDetector": ("aws",), "AzureStorageKeyDetector": ("AccountKey=",),
    "BasicAuthDetector": ("://",), "CloudantDetector": _CONTEXT_WORDS, "DiscordBotTokenDetector": (".",),
    "IbmCloudIamDetector": _CONTEXT_WORDS, "IbmCosHmacDetector": ("secret",), "MailchimpDetector": ("-us",),
    "NpmDetector": ("_authToken",), "OpenAIDetector": ("T3BlbkFJ",), "PypiTokenDetector": ("pypi-",),
    "SendGridDetector": ("SG.",), "SlackDetector": ("xox", "hooks.slack.com"), "SoftlayerDetector": _CONTEXT_WORDS,
    "SquareOAuthDetector": ("sq0csp-",), "StripeDetector": ("k_live_",), "TelegramBotTokenDetector": (":",),
    "TwilioKeyDetector": ("AC", "SK"),
}
# every word of detect-secrets' keyword denylist contains one of these
_KEYWORD_HINTS = ("key", "pass", "pwd", "secret", "contrase")
KEYWORD_TYPE = "Secret Keyword"
_QUOTES = "'\"`"
_UNQUOTED_VALUE = re.compile(r"[^\s,;'\"`]+")
_MIN_LENGTH = 4  # shorter "secrets" are fragments (a detector's capture group), not values


class SecretScanner:
    """Finds and redacts secrets in a text; built once, shared by every request."""

    def __init__(self) -> None:
        from detect_secrets.core.plugins.util import get_mapping_from_secret_type_to_class

        classes = {cls.__name__: cls for cls in get_mapping_from_secret_type_to_class().values()}
        self._detectors = tuple((classes[name](), hints) for name, hints in DETECTORS.items() if name in classes)
        self._keyword_regexes = tuple(CONFIG_DENYLIST_REGEX_TO_GROUP.items())
        self._keys = tuple((kind, hints, re.compile(pattern)) for kind, hints, pattern in KEY_PATTERNS)

    def redact(self, text: str) -> tuple[str, list[str]]:
        """``text`` with every secret replaced by ``[REDACTED]``, and the types found (in order)."""
        found: list[str] = []
        for kind, hints, regex in self._keys:
            if any(hint in text for hint in hints):
                text = _replace(regex, text, kind, found)
        lower = text.lower()
        detectors = tuple(detector for detector, hints in self._detectors if _has(text, lower, hints))
        keywords = _has(text, lower, _KEYWORD_HINTS)
        if not detectors and not keywords:
            return text, found
        lines = text.splitlines(keepends=True) if "\n" in text else (text,)
        text = "".join(self._redact_line(line, detectors, keywords, found) for line in lines)
        return text, found

    def _redact_line(self, line: str, detectors: tuple, keywords: bool, found: list[str]) -> str:
        if keywords and _has(line, line.lower(), _KEYWORD_HINTS):
            line = self._redact_keywords(line, found)
        for detector in detectors:
            for value in detector.analyze_string(line):
                value = value.strip(" \t'\"=:")
                if _plausible(value):
                    found.append(detector.secret_type)
                    line = line.replace(value, REDACTED)
        return line

    def _redact_keywords(self, line: str, found: list[str]) -> str:
        """Values assigned to secret-sounding names (detect-secrets' keyword detector, config-file
        flavour: quotes optional). An unquoted value ends at whitespace, a comma or a semicolon."""
        pieces, position = [], 0
        while position < len(line):
            match = self._next_keyword(line, position)
            if match is None:
                break
            start, end, assignment = match
            if start == 0 or line[start - 1] not in _QUOTES:
                end = _UNQUOTED_VALUE.match(line, start).end()
            value = line[start:end]
            if _plausible(value) and not is_indirect_reference(assignment):
                pieces += [line[position:start], REDACTED]
                found.append(KEYWORD_TYPE)
            else:
                pieces.append(line[position:end])
            position = end
        if not pieces:
            return line
        pieces.append(line[position:])
        return "".join(pieces)

    def _next_keyword(self, line: str, position: int) -> tuple[int, int, str] | None:
        """(start, end) of the leftmost keyword value at or after ``position``, and its assignment."""
        best = None
        for regex, group in self._keyword_regexes:
            match = regex.search(line, position)
            if match and match.group(group) and (best is None or match.start(group) < best[0]):
                best = (match.start(group), match.end(group), match.group(0))
        return best


def _has(text: str, lower: str, hints: tuple[str, ...]) -> bool:
    """Whether ``text`` contains a hint (a lower-case hint: in ``lower``, any case)."""
    return any(hint in (lower if hint.islower() else text) for hint in hints)


def _plausible(value: str) -> bool:
    """Not a placeholder, a reference or an already redacted value."""
    return (len(value) >= _MIN_LENGTH and REDACTED not in value and not is_templated_secret(value)
            and not is_prefixed_with_dollar_sign(value) and not is_not_alphanumeric_string(value))


def _replace(regex: re.Pattern[str], text: str, kind: str, found: list[str]) -> str:
    """Every match (or its group "secret", if the pattern has one) replaced by ``[REDACTED]``."""
    def replace(match: re.Match[str]) -> str:
        found.append(kind)
        if "secret" not in regex.groupindex:
            return REDACTED
        whole, offset = match.group(0), match.start()
        return whole[:match.start("secret") - offset] + REDACTED + whole[match.end("secret") - offset:]

    return regex.sub(replace, text)


_FIELD_NOUNS = (("messages", "message"), ("prompt", "prompt"), ("input", "input"))


class HideSecrets(Guardrail):
    name = "hide_secrets"

    def __init__(self, scanner: SecretScanner | None = None) -> None:
        self.scanner = scanner or SecretScanner()

    async def pre_call(self, call: Call) -> None:
        found: list[str] = []

        def redact(text: str) -> str:
            redacted, types = self.scanner.redact(text)
            if not types:
                return text
            found.extend(types)
            return redacted

        rewrite_request(call.body, redact)
        if found:
            noun = next((noun for field, noun in _FIELD_NOUNS if field in call.body), "message")
            logger.warning("Detected and redacted secrets in %s: %s", noun, list(dict.fromkeys(found)))


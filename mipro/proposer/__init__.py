"""Meta-prompt building and parsing for the grounded instruction proposer."""

from mipro.proposer.examples import answer_text, query_part
from mipro.proposer.meta_prompt import (
    PROPOSAL_HEADER,
    SUMMARY_HEADER,
    ProposalContext,
    ScoredInstruction,
    build_proposal_messages,
    build_summary_messages,
    examples_shown,
)
from mipro.proposer.parse import ProposalParseError, is_duplicate, normalize, parse_instruction
from mipro.proposer.tips import TIP_NAMES, TIPS

__all__ = [
    "PROPOSAL_HEADER",
    "SUMMARY_HEADER",
    "TIPS",
    "TIP_NAMES",
    "ProposalContext",
    "ProposalParseError",
    "ScoredInstruction",
    "answer_text",
    "build_proposal_messages",
    "build_summary_messages",
    "examples_shown",
    "is_duplicate",
    "normalize",
    "parse_instruction",
    "query_part",
]

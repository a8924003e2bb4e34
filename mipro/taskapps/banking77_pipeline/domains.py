"""The banking77 intents grouped into coarse domains: the router's labels (stage 1).

A hand-made grouping by what the customer is dealing with (not part of the dataset). Intents missing from
the map (the built-in fallback set's) fall in `general`, so the app serves any label list.
"""

from __future__ import annotations

GENERAL = "general"

_INTENTS_BY_DOMAIN = {
    "card_delivery": (
        "card_arrival card_delivery_estimate get_physical_card order_physical_card getting_spare_card "
        "card_about_to_expire activate_my_card card_linking"
    ),
    "card_problems": (
        "card_not_working contactless_not_working card_swallowed lost_or_stolen_card compromised_card "
        "pin_blocked change_pin virtual_card_not_working card_acceptance"
    ),
    "virtual_cards": (
        "getting_virtual_card get_disposable_virtual_card disposable_card_limits visa_or_mastercard "
        "apple_pay_or_google_pay"
    ),
    "card_payments": (
        "card_payment_fee_charged card_payment_not_recognised card_payment_wrong_exchange_rate "
        "declined_card_payment pending_card_payment reverted_card_payment? transaction_charged_twice "
        "extra_charge_on_statement direct_debit_payment_not_recognised request_refund "
        "Refund_not_showing_up"
    ),
    "cash_withdrawals": (
        "atm_support cash_withdrawal_charge cash_withdrawal_not_recognised declined_cash_withdrawal "
        "pending_cash_withdrawal wrong_amount_of_cash_received wrong_exchange_rate_for_cash_withdrawal"
    ),
    "top_ups": (
        "automatic_top_up pending_top_up top_up_by_bank_transfer_charge top_up_by_card_charge "
        "top_up_by_cash_or_cheque top_up_failed top_up_limits top_up_reverted topping_up_by_card "
        "verify_top_up"
    ),
    "transfers": (
        "cancel_transfer declined_transfer failed_transfer pending_transfer transfer_fee_charged "
        "transfer_into_account transfer_not_received_by_recipient transfer_timing beneficiary_not_allowed "
        "receiving_money balance_not_updated_after_bank_transfer "
        "balance_not_updated_after_cheque_or_cash_deposit"
    ),
    "currencies": (
        "exchange_rate exchange_charge exchange_via_app fiat_currency_support "
        "supported_cards_and_currencies country_support"
    ),
    "account_and_identity": (
        "age_limit edit_personal_details passcode_forgotten terminate_account lost_or_stolen_phone "
        "why_verify_identity unable_to_verify_identity verify_my_identity verify_source_of_funds"
    ),
}
DOMAINS: dict[str, tuple[str, ...]] = {d: tuple(v.split()) for d, v in _INTENTS_BY_DOMAIN.items()}
# What each domain covers, shown beside its name in the router's list (the general one: anything else).
DESCRIPTIONS: dict[str, str] = {
    "card_delivery": "ordering a card, its delivery and arrival, activating or linking it",
    "card_problems": "a card that is lost, stolen, compromised, swallowed, blocked or not working; the PIN",
    "virtual_cards": "virtual and disposable cards, Visa or Mastercard, Apple Pay or Google Pay",
    "card_payments": (
        "card payments and direct debits: fees, declined or pending payments, refunds, charged twice"
    ),
    "cash_withdrawals": "cash from an ATM: fees, declined or pending withdrawals, the wrong amount of cash",
    "top_ups": "topping up the account by card, bank transfer, cash or cheque; top-up limits and failures",
    "transfers": "sending and receiving money: transfers, beneficiaries, timing, fees, balance not updated",
    "currencies": "exchange rates and fees, foreign currencies, supported countries",
    "account_and_identity": (
        "verifying identity, personal details, passcode, age limit, closing the account, a lost phone"
    ),
    GENERAL: "any other banking request",
}
DOMAIN_OF: dict[str, str] = {intent: domain for domain, intents in DOMAINS.items() for intent in intents}


def domain_of(intent: str) -> str:
    return DOMAIN_OF.get(intent, GENERAL)


def format_domains(domains: list[str]) -> str:
    """`"1. card_delivery - ordering a card, …\n2. …"`: the router's list, with what each domain covers."""
    return "\n".join(f"{i}. {d} - {DESCRIPTIONS.get(d, d)}" for i, d in enumerate(domains, start=1))


def domains_for(labels: list[str]) -> dict[str, list[str]]:
    """The domains of a label list in the map's order (then `general`), each with its labels in order."""
    out: dict[str, list[str]] = {d: [] for d in [*DOMAINS, GENERAL]}
    for label in labels:
        out[domain_of(label)].append(label)
    return {d: intents for d, intents in out.items() if intents}

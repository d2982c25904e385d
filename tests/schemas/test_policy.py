"""The policy file (schemas/policy.py) and the broker-verified caller (schemas/identity.py)."""

from __future__ import annotations

import msgspec
import pytest

from schemas.identity import REQUEST_INFO, caller
from schemas.policy import PolicyError, allows, check, parse_policy, parse_rate

ISSUE_POLICY = """
[roles.reader]
allow = ["fs.read_*", "fs.list_*", "fs.get_file_info", "fs.search_files", "memory.read_graph", "memory.search_nodes", "memory.open_nodes"]
[roles.writer]
allow = ["fs.*", "memory.*"]
deny  = ["fs.delete_file"]
[identities.alice]
roles = ["writer"]
[identities.ci]
roles = ["reader"]
rate = "20/s"
"""


def test_the_issues_policy_parses_and_deny_wins() -> None:
    """The example policy of issue #11 is accepted; writer may write but not delete; ci only reads."""
    p = parse_policy(ISSUE_POLICY)
    check(p, ["fs", "memory"])
    assert allows(p, "alice", "fs", "write_file") and not allows(p, "alice", "fs", "delete_file")
    assert allows(p, "ci", "fs", "read_text_file") and not allows(p, "ci", "fs", "write_file")
    assert not allows(p, "nobody", "fs", "read_text_file")


@pytest.mark.parametrize(
    ("text", "named"),
    [
        ('[roles.a]\nallow = ["fs.x"]\ncolour = 1\n', "roles.a"),
        ('[identities.ci]\nroles = ["ghost"]\n', "'ghost'"),
        ('[roles.a]\nallow = ["db.*"]\n', "'db.*'"),
        ('[identities.ci]\nroles = []\nrate = "20/d"\n', "identities.ci.rate"),
        ("[rolez.a]\n", "'rolez'"),
        ('[roles.a]\nallow = ["nodot"]\n', "roles.a.allow"),
        ('[identities.ci]\nroles = []\ncertificate = "alice"\n', "identities.ci.certificate"),
        ('[identities.ci]\nroles = []\ncertificate = "XX=alice"\n', "identities.ci.certificate"),
        (
            '[identities.a]\nroles = []\ncertificate = "O=x, CN=a"\n[identities.b]\nroles = []\ncertificate = "CN=a,O=x"\n',
            "identities.a",
        ),
    ],
)
def test_bad_policies_are_refused_by_name(text: str, named: str) -> None:
    """Unknown keys, unknown roles, patterns matching no known service and bad rates are refused, naming the culprit."""
    with pytest.raises(PolicyError) as info:
        check(parse_policy(text, "p.toml"), ["fs", "memory"], "p.toml")
    assert named in str(info.value) and "p.toml" in str(info.value)


def test_a_certificate_selector_is_a_set_of_subject_attributes() -> None:
    """`certificate = "CN=alice, O=mcp-nats"` parses to its attribute pairs, in any order, spaces ignored."""
    from schemas.policy import certificate_selector

    p = parse_policy(
        ISSUE_POLICY.replace('roles = ["writer"]', 'roles = ["writer"]\ncertificate = "CN=alice, O=mcp-nats"')
    )
    assert certificate_selector(p.identities["alice"].certificate) == (("CN", "alice"), ("O", "mcp-nats"))
    assert p.identities["ci"].certificate == ""


def test_rates() -> None:
    """ "20/s" is 20 per second with a burst of 20; "90/m" is 1.5 per second."""
    assert parse_rate("20/s").per_second == 20 and parse_rate("20/s").burst == 20
    assert parse_rate("90/m").per_second == 1.5
    with pytest.raises(PolicyError):
        parse_rate("0/s")


def test_only_the_exact_server_header_identifies_the_caller() -> None:
    """With auth on, Nats-Request-Info (exact key) names the caller; Mcp-Client and look-alikes never do."""
    info = msgspec.json.encode({"acc": "ACLIENTS", "user": "UKEY", "name_tag": "ci", "jwt": "x"}).decode()
    who = caller(
        {REQUEST_INFO: info, "Mcp-Client": "root", "nats-request-info": '{"acc":"A","name_tag":"root"}'},
        broker=True,
    )
    assert (who.identity, who.verified, who.account) == ("ci", True, "ACLIENTS")
    assert caller({"nats-request-info": info, "Mcp-Client": "root"}, broker=True).verified is False
    assert caller({REQUEST_INFO: '{"acc":"A","user":"bob"}'}, broker=True).identity == "bob"
    # without auth nothing strips a forged header: it is never trusted, the claim is recorded as unverified
    forged = caller({REQUEST_INFO: info, "Mcp-Client": "root"}, broker=False)
    assert (forged.identity, forged.verified) == ("root", False)
    assert caller({REQUEST_INFO: "not json", "Mcp-Client": "x"}, broker=True) == caller(
        {"Mcp-Client": "x"}, broker=True
    )

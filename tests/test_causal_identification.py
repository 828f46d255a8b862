"""Backdoor adjustment sets on the textbook graphs, where the valid sets are known by hand."""

from __future__ import annotations

import networkx as nx
import pytest

from probrep.causal.identification import NotIdentifiableError, adjustment_set, satisfies_backdoor


def graph(*edges: str) -> nx.DiGraph:
    return nx.DiGraph([tuple(e.split("->")) for e in edges])


def test_a_confounder_is_adjusted_for():
    g = graph("Z->X", "Z->Y", "X->Y")
    assert adjustment_set(g, "X", "Y") == {"Z"}
    assert satisfies_backdoor(g, "X", "Y", {"Z"}) and not satisfies_backdoor(g, "X", "Y", set())


def test_a_mediator_is_never_adjusted_for():
    g = graph("X->M", "M->Y")
    assert adjustment_set(g, "X", "Y") == set()
    assert not satisfies_backdoor(g, "X", "Y", {"M"})  # a descendant of the treatment


def test_m_bias_adjusting_for_the_collider_opens_a_path():
    g = graph("A->X", "A->M", "B->M", "B->Y", "X->Y")
    assert adjustment_set(g, "X", "Y") == set()
    assert not satisfies_backdoor(g, "X", "Y", {"M"})
    assert satisfies_backdoor(g, "X", "Y", {"M", "A"}) and satisfies_backdoor(g, "X", "Y", {"M", "B"})


def test_an_unobserved_confounder_with_an_observed_proxy_on_the_path():
    g = graph("U->W", "W->X", "U->Y", "X->Y")
    assert adjustment_set(g, "X", "Y", observed={"X", "Y", "W"}) == {"W"}


def test_an_unobserved_confounder_makes_the_effect_not_identifiable_and_says_where():
    g = graph("U->X", "U->Y", "X->M", "M->Y")  # front-door graph: identifiable, but not by backdoor
    with pytest.raises(NotIdentifiableError, match=r"X - U - Y.*unobserved \['U'\]"):
        adjustment_set(g, "X", "Y", observed={"X", "M", "Y"})


def test_bad_input_names_the_problem():
    g = graph("Z->X", "X->Y")
    with pytest.raises(ValueError, match="treatment 'Q' is not a node"):
        adjustment_set(g, "Q", "Y")
    with pytest.raises(ValueError, match="the same node"):
        adjustment_set(g, "X", "X")
    with pytest.raises(ValueError, match=r"observed names \['nope'\]"):
        adjustment_set(g, "X", "Y", observed={"X", "Y", "nope"})
    with pytest.raises(ValueError, match="without cycles"):
        adjustment_set(graph("X->Y", "Y->X"), "X", "Y")


def test_an_scm_answers_from_its_own_graph():
    from probrep.causal import SCM

    scm = SCM.from_equations({"Z": "Normal(0, 1)", "X": "Z + Normal(0, 1)", "Y": "X + 2*Z + Normal(0, 1)"})
    assert scm.adjustment_set("X", "Y") == {"Z"}
    with pytest.raises(NotIdentifiableError):
        scm.adjustment_set("X", "Y", observed={"X", "Y"})

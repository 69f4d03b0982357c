"""The template hash in instance names does not change across releases.

An instance is named ``<pool>-<template hash>-<ordinal>``, and the planner replaces
every member whose hash is not its spec's. A release that hashed the same spec
differently (a key renamed, an input dropped, another JSON layout) would roll every
VM of every pool on upgrade. So the hash of fixed specs is pinned here, value for
value; a change to these strings is a change users pay for with a full rollout.

The specs use their own cloud_init template: the shipped template's text is an input
too, and editing it rolls pools on purpose, which must not break this test.
"""

from __future__ import annotations

from reconciler import ownership
from reconciler.spec import parse_pool_spec

TEMPLATE = "#cloud-config\nwrite_files: [{path: /etc/motd, content: '{{ vars.motd }}'}]\n"
# Every input of the hash away from its default, each with a value no other input has.
SHAPE = {
    "image": "jammy",
    "cpus": "4",
    "memory": "4G",
    "disk": "20G",
    "node_class": "big",
    "datacenter": "lab",
    "node_pool": "edge",
    "cloud_init": TEMPLATE,
    # A YAML date is not a JSON value: it is hashed by its text.
    "cloud_init_vars": "motd: hello\nsince: 2024-01-02\nracks: [r1, r2]",
}


def test_the_hash_of_a_fixed_spec_is_pinned() -> None:
    spec = parse_pool_spec("web", {"min": "1", "max": "3", **SHAPE})
    assert spec.template_hash == "hbz2p"
    assert ownership.instance_name("web", spec.template_hash, 0) == "web-hbz2p-0"
    assert ownership.instance_name("web", spec.template_hash, 3, "big1") == "web-hbz2p-big1-3"


def test_the_hash_of_a_spec_with_default_shape_is_pinned() -> None:
    spec = parse_pool_spec(
        "web", {"min": "1", "max": "3", "cloud_init": TEMPLATE, "cloud_init_vars": "motd: hello"}
    )
    assert spec.template_hash == "6k52r"


def test_the_order_of_cloud_init_vars_does_not_change_the_hash() -> None:
    # Rewriting the variable with its keys in another order is no new shape: no rollout.
    reordered = {**SHAPE, "cloud_init_vars": "racks: [r1, r2]\nsince: 2024-01-02\nmotd: hello"}
    spec = parse_pool_spec("web", {"min": "1", "max": "3", **reordered})
    assert spec.template_hash == "hbz2p"


def test_the_pool_name_and_sizing_are_not_in_the_hash() -> None:
    # The pool name is already in the instance name; sizing never reshapes an instance.
    spec = parse_pool_spec("db", {"min": "0", "max": "9", "count": "5", **SHAPE}, 4)
    assert spec.template_hash == "hbz2p"

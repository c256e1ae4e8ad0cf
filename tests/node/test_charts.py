"""The SVG charts: one mark per data point, links on marks, escaped labels, deterministic layout."""
from __future__ import annotations

import xml.etree.ElementTree as ET

import pytest

from node.web import charts

NS = {"s": "http://www.w3.org/2000/svg"}


def _parse(markup) -> ET.Element:
    return ET.fromstring(str(markup))  # well-formed XML, or this raises


def _marks(root: ET.Element, tag: str, cls: str) -> list[ET.Element]:
    return [e for e in root.iter(f"{{{NS['s']}}}{tag}") if cls in (e.get("class") or "").split()]


def _links(root: ET.Element) -> list[str]:
    return [a.get("href") for a in root.iter(f"{{{NS['s']}}}a")]


def test_line_chart_has_one_point_per_value_with_its_value_and_link():
    labels = ["2026-01-01", "2026-01-02", "2026-01-03"]
    svg = charts.line_chart("c", "t", labels, [charts.Series("access", [3, 0, 12], ["/a?d=1", "/a?d=2", "/a?d=3"]),
                                               charts.Series("denial", [1, 2, 0])])
    root = _parse(svg)
    points = _marks(root, "circle", "point")
    assert len(points) == 6
    assert [(p.get("data-series"), p.get("data-x"), p.get("data-value")) for p in points[:3]] == \
           [("access", "2026-01-01", "3"), ("access", "2026-01-02", "0"), ("access", "2026-01-03", "12")]
    assert _links(root) == ["/a?d=1", "/a?d=2", "/a?d=3"]
    # A larger value is drawn higher (smaller y), zero sits on the baseline.
    ys = [float(p.get("cy")) for p in points[:3]]
    assert ys[2] < ys[0] < ys[1]


def test_line_chart_refuses_series_of_the_wrong_length():
    with pytest.raises(ValueError):
        charts.line_chart("c", "t", ["a", "b"], [charts.Series("x", [1])])


def test_bar_chart_segments_add_up_and_scale_with_values():
    bars = [charts.Bar("insurer_a", [("access", 10), ("denial", 5)], "/t?r=a", key="0xA"),
            charts.Bar("platform", [("access", 30), ("denial", 0)], "/t?r=p", key="0xP")]
    root = _parse(charts.bar_chart("b", "t", bars))
    groups = [g for g in root.iter(f"{{{NS['s']}}}g") if g.get("class") == "bar"]
    assert [(g.get("data-key"), g.get("data-value")) for g in groups] == [("0xA", "15"), ("0xP", "30")]
    widths = {(g.get("data-key"), r.get("data-series")): float(r.get("width")) for g in groups
              for r in g.iter(f"{{{NS['s']}}}rect")}
    assert widths[("0xP", "access")] == pytest.approx(3 * widths[("0xA", "access")], rel=0.01)
    assert widths[("0xA", "denial")] == pytest.approx(widths[("0xA", "access")] / 2, rel=0.01)
    assert _links(root) == ["/t?r=a", "/t?r=p"]


def test_labels_and_links_are_escaped():
    evil = '<script>alert("x")</script>&'
    svg = str(charts.bar_chart("b", evil, [charts.Bar(evil, [("access", 1)], '/t?a=1&b="2"')]))
    assert "<script>" not in svg and "&lt;script&gt;" in svg
    root = _parse(svg)
    assert _links(root) == ['/t?a=1&b="2"']  # the parser undoes the escaping: the link is intact
    flow = str(charts.flow_map("f", "t", [charts.FlowNode("0x1", evil), charts.FlowNode("0x2", "b")],
                               [charts.FlowEdge("0x1", "0x2", 1, 1)]))
    assert "<script>" not in flow
    _parse(flow)


def test_flow_map_draws_every_edge_and_node_with_denials_and_anomalies_marked():
    nodes = [charts.FlowNode("0xB", "insurer_b"), charts.FlowNode("0xA", "insurer_a", flagged=True),
             charts.FlowNode("0xP", "platform")]
    edges = [charts.FlowEdge("0xA", "0xP", uses=7, rows=21, href="/t?o=a&r=p"),
             charts.FlowEdge("0xA", "0xB", uses=5, rows=15, denials=2),
             charts.FlowEdge("0xB", "0xP", uses=0, rows=0, denials=3)]
    root = _parse(charts.flow_map("f", "t", nodes, edges))
    drawn = [g for g in root.iter(f"{{{NS['s']}}}g") if "edge" in (g.get("class") or "").split()]
    assert {(g.get("data-source"), g.get("data-target"), g.get("data-uses"), g.get("data-rows"), g.get("data-denials"))
            for g in drawn} == {("0xA", "0xP", "7", "21", "0"), ("0xA", "0xB", "5", "15", "2"), ("0xB", "0xP", "0", "0", "3")}
    assert {g.get("data-target") for g in drawn if "has-denials" in g.get("class")} == {"0xB", "0xP"}
    assert [g.get("data-source") for g in drawn if "denied-only" in g.get("class")] == ["0xB"]
    node_groups = [g for g in root.iter(f"{{{NS['s']}}}g") if "node" in (g.get("class") or "").split()]
    assert [g.get("data-label") for g in node_groups] == ["insurer_a", "insurer_b", "platform"]
    assert [g.get("data-key") for g in node_groups if "flagged" in g.get("class")] == ["0xA"]
    # Heavier flows are drawn wider.
    width = {g.get("data-target"): float([p for p in g.iter(f"{{{NS['s']}}}path") if p.get("class") == "use"][0]
                                         .get("stroke-width")) for g in drawn if g.get("data-source") == "0xA"}
    assert width["0xP"] > width["0xB"]
    paths = {(g.get("data-source"), g.get("data-target")): sorted(p.get("class") for p in g.iter(f"{{{NS['s']}}}path"))
             for g in drawn}
    assert paths == {("0xA", "0xP"): ["hit", "use"], ("0xA", "0xB"): ["hit", "refusal", "use"],
                     ("0xB", "0xP"): ["hit", "refusal"]}
    assert "/t?o=a&r=p" in _links(root)


def test_flow_map_layout_does_not_depend_on_input_order():
    nodes = [charts.FlowNode(k, n) for k, n in (("0x1", "c"), ("0x2", "a"), ("0x3", "b"))]
    edges = [charts.FlowEdge("0x1", "0x2", 1, 5), charts.FlowEdge("0x3", "0x1", 2, 9)]
    first = str(charts.flow_map("f", "t", nodes, edges))
    assert first == str(charts.flow_map("f", "t", list(reversed(nodes)), list(reversed(edges))))


def test_flow_map_refuses_edges_to_unknown_nodes():
    with pytest.raises(ValueError):
        charts.flow_map("f", "t", [charts.FlowNode("0x1", "a")], [charts.FlowEdge("0x1", "0x9", 1, 1)])


def test_timeline_places_marks_in_time_order_within_their_lane():
    marks = [charts.Mark(1_000 + 50, "denial_burst", "late", "/x"), charts.Mark(1_000 + 10, "denial_burst", "early"),
             charts.Mark(1_000 + 90, "volume_spike", "spike")]
    root = _parse(charts.timeline("t", "t", marks, 1_000, 1_100))
    drawn = _marks(root, "circle", "mark")
    assert len(drawn) == 3
    xs = {m.get("data-ts"): float(m.get("cx")) for m in drawn}
    assert xs["1010"] < xs["1050"] < xs["1090"]
    lanes = {m.get("data-lane"): m.get("cy") for m in drawn}
    assert len(set(lanes.values())) == 2
    with pytest.raises(ValueError):
        charts.timeline("t", "t", [], 5, 5)


def test_empty_charts_still_render():
    for svg in (charts.bar_chart("b", "t", []), charts.timeline("t", "t", [], 0, 10),
                charts.flow_map("f", "t", [], []), charts.line_chart("l", "t", [], [])):
        _parse(svg)

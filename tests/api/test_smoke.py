from nemo_relay import ScopeType, scope


def test_push_pop_emits_start_and_end(events):
    handle = scope.push("outer", ScopeType.Agent, input={"q": 1})
    scope.pop(handle, output={"a": 2})
    assert events.names() == [("start", "outer"), ("end", "outer")]
    start, end = events
    assert start.uuid == end.uuid == handle.uuid
    assert start.data == {"q": 1} and end.data == {"a": 2}

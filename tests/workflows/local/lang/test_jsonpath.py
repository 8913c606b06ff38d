"""jsonpath() as Argo evaluates it: github.com/evilmonkeyinc/jsonpath v0.8.1 ported (workflows/local/lang/jsonpath*).

The tables below are the library's own test tables, translated case by case from its v0.8.1 sources (named above
each); cases need Go values JSON cannot give (structs, Go ints, typed slices, pointers), the query options Argo does
not pass, or the library's stub script engines are left out. Like the library's tests, a list expected is compared
as a multiset (testify's ElementsMatch); the order the port gives is pinned by the tests after the tables, which
follow the library's code (map keys sorted). Last come the expressions of Argo's examples, through exprlang.
"""

# ruff: noqa: E501  (the tables keep the library's selectors and JSON documents on one line each)

from __future__ import annotations

from typing import Any

import pytest

from workflows.local.lang.errors import ExprCompileError, ExprRuntimeError, Unsupported
from workflows.local.lang.exprlang import argo_env, compile_expr, replace_expression
from workflows.local.lang.gotypes import Int64
from workflows.local.lang.jsonpath import compile_selector, json_path, query
from workflows.local.lang.jsonpath_parse import parse, tokenize
from workflows.local.lang.jsonpath_script import (
    OPERATORS,
    Operator,
    ScriptEngine,
    Selector,
    find_unquoted_operator,
    get_boolean,
    get_elements,
    get_integer,
    get_number,
    get_string,
)
from workflows.local.lang.jsonpath_subscripts import FilterToken, RangeToken, UnionToken
from workflows.local.lang.jsonpath_tokens import (
    CurrentToken,
    ExpressionToken,
    IndexToken,
    KeyToken,
    LengthToken,
    PathError,
    RecursiveToken,
    RootToken,
    ScriptToken,
    Token,
    WildcardToken,
    unmarshal,
)

ENGINE = ScriptEngine()


def Op(name: str, arg1: Any = None, arg2: Any = None) -> Operator:  # noqa: N802 (reads as the Go literal it replaces)
    return Operator(name, arg1, arg2)


def Sel(selector: str) -> Any:  # noqa: N802
    """newSelectorOperator(selector)."""
    return ENGINE._build(selector, ("@", "$"))


SAMPLE = '{\n\t"store": {\n\t\t"book": [{\n\t\t\t\t"category": "reference",\n\t\t\t\t"author": "Nigel Rees",\n\t\t\t\t"title": "Sayings of the Century",\n\t\t\t\t"price": 8.95\n\t\t\t},\n\t\t\t{\n\t\t\t\t"category": "fiction",\n\t\t\t\t"author": "Evelyn Waugh",\n\t\t\t\t"title": "Sword of Honour",\n\t\t\t\t"price": 12.99\n\t\t\t},\n\t\t\t{\n\t\t\t\t"category": "fiction",\n\t\t\t\t"author": "Herman Melville",\n\t\t\t\t"title": "Moby Dick",\n\t\t\t\t"isbn": "0-553-21311-3",\n\t\t\t\t"price": 8.99\n\t\t\t},\n\t\t\t{\n\t\t\t\t"category": "fiction",\n\t\t\t\t"author": "J. R. R. Tolkien",\n\t\t\t\t"title": "The Lord of the Rings",\n\t\t\t\t"isbn": "0-395-19395-8",\n\t\t\t\t"price": 22.99\n\t\t\t}\n\t\t],\n\t\t"bicycle": {\n\t\t\t"color": "red",\n\t\t\t"price": 19.95\n\t\t}\n\t},\n\t"expensive": 10\n}'  # helper_test.go sampleDataString


# test/{array,bracket,dot,filter,misc,union}_test.go (the json-path-comparison consensus tables): selector, data, expected, error
CONSENSUS: list[tuple[Any, ...]] = [
    ('$[1:3]', '["first", "second", "third", "forth", "fifth"]', ['second', 'third'], ''),  # array
    ('$[0:5]', '["first", "second", "third", "forth", "fifth"]', ['first', 'second', 'third', 'forth', 'fifth'], ''),  # array
    ('$[7:10]', '["first", "second", "third"]', [], ''),  # array
    ('$[1:3]', '{":": 42, "more": "string", "a": 1, "b": 2, "c": 3, "1:3": "nice"}', None, 'range: invalid token target. expected [array slice] got [map]'),  # array
    ('$[1:10]', '["first", "second", "third"]', ['second', 'third'], ''),  # array
    ('$[2:113667776004]', '["first", "second", "third", "forth", "fifth"]', ['third', 'forth', 'fifth'], ''),  # array
    ('$[2:-113667776004:-1]', '["first", "second", "third", "forth", "fifth"]', [], ''),  # array
    ('$[-113667776004:2]', '["first", "second", "third", "forth", "fifth"]', ['first', 'second'], ''),  # array
    ('$[113667776004:2:-1]', '["first", "second", "third", "forth", "fifth"]', [], ''),  # array
    ('$[-4:-5]', '[2, "a", 4, 5, 100, "nice"]', [], ''),  # array
    ('$[-4:-4]', '[2, "a", 4, 5, 100, "nice"]', [], ''),  # array
    ('$[-4:-3]', '[2, "a", 4, 5, 100, "nice"]', [4.0], ''),  # array
    ('$[-4:1]', '[2, "a", 4, 5, 100, "nice"]', [], ''),  # array
    ('$[-4:2]', '[2, "a", 4, 5, 100, "nice"]', [], ''),  # array
    ('$[-4:3]', '[2, "a", 4, 5, 100, "nice"]', [4.0], ''),  # array
    ('$[3:0:-2]', '["first", "second", "third", "forth", "fifth"]', [], ''),  # array
    ('$[7:3:-1]', '["first", "second", "third", "forth", "fifth"]', [], ''),  # array
    ('$[0:3:-2]', '["first", "second", "third", "forth", "fifth"]', ['third', 'first'], ''),  # array
    ('$[::-2]', '["first", "second", "third", "forth", "fifth"]', ['fifth', 'third', 'first'], ''),  # array
    ('$[1:]', '["first", "second", "third", "forth", "fifth"]', ['second', 'third', 'forth', 'fifth'], ''),  # array
    ('$[3::-1]', '["first", "second", "third", "forth", "fifth"]', ['fifth', 'forth'], ''),  # array
    ('$[:2]', '["first", "second", "third", "forth", "fifth"]', ['first', 'second'], ''),  # array
    ('$[:]', '["first","second"]', ['first', 'second'], ''),  # array
    ('$[:]', '{":": 42, "more": "string"}', None, 'range: invalid token target. expected [array slice] got [map]'),  # array
    ('$[::]', '["first","second"]', ['first', 'second'], ''),  # array
    ('$[:2:-1]', '["first", "second", "third", "forth", "fifth"]', ['second', 'first'], ''),  # array
    ('$[3:-4]', '[2, "a", 4, 5, 100, "nice"]', [], ''),  # array
    ('$[3:-3]', '[2, "a", 4, 5, 100, "nice"]', [], ''),  # array
    ('$[3:-2]', '[2, "a", 4, 5, 100, "nice"]', [5.0], ''),  # array
    ('$[2:1]', '["first", "second", "third", "forth"]', [], ''),  # array
    ('$[0:0]', '["first", "second"]', [], ''),  # array
    ('$[0:1]', '["first", "second"]', ['first'], ''),  # array
    ('$[-1:]', '["first", "second", "third"]', ['third'], ''),  # array
    ('$[-2:]', '["first", "second", "third"]', ['second', 'third'], ''),  # array
    ('$[-4:]', '["first", "second", "third"]', ['first', 'second', 'third'], ''),  # array
    ('$[0:3:2]', '["first", "second", "third", "forth", "fifth"]', ['first', 'third'], ''),  # array
    ('$[0:3:0]', '["first", "second", "third", "forth", "fifth"]', None, 'range: invalid token out of range'),  # array
    ('$[0:3:1]', '["first", "second", "third", "forth", "fifth"]', ['first', 'second', 'third'], ''),  # array
    ('$[010:024:010]', '[0,1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17,18,19,20,21,22,23,24,25]', [10.0, 20.0], ''),  # array
    ('$[0:4:2]', '["first", "second", "third", "forth", "fifth"]', ['first', 'third'], ''),  # array
    ('$[1:3:]', '["first", "second", "third", "forth", "fifth"]', ['second', 'third'], ''),  # array
    ('$[::2]', '["first", "second", "third", "forth", "fifth"]', ['first', 'third', 'fifth'], ''),  # array
    ("$['key']", '{"key": "value"}', 'value', ''),  # bracket
    ("$['missing']", '{"key": "value"}', None, "key: invalid token key 'missing' not found"),  # bracket
    ('$..[0]', '[ "first", { "key": [ "first nested", { "more": [ { "nested": ["deepest", "second"] }, ["more", "values"] ] } ] } ]', ['deepest', 'first nested', 'first', 'more', {'nested': ['deepest', 'second']}], ''),  # bracket
    ("$['ü']", '{"ü": 42}', None, "key: invalid token key 'ü' not found"),  # bracket
    ("$['two.some']", '{ "one": {"key": "value"}, "two": {"some": "more", "key": "other value"}, "two.some": "42" }', '42', ''),  # bracket
    ('$["key"]', '{"key": "value"}', 'value', ''),  # bracket
    ('$[]', '{"": 42, "\'\'": 123, "\\"\\"": 222}', None, "invalid JSONPath selector '$[]' invalid token. '[]' does not match any token format"),  # bracket
    ("$['']", '{"": 42, "\'\'": 123, "\\"\\"": 222}', 42.0, ''),  # bracket
    ('$[""]', '{"": 42, "\'\'": 123, "\\"\\"": 222}', 42.0, ''),  # bracket
    ('$[-2]', '["one element"]', None, 'index: invalid token out of range'),  # bracket
    ('$[2]', '["first", "second", "third", "forth", "fifth"]', 'third', ''),  # bracket
    ('$[0]', '{ "0": "value" }', None, 'index: invalid token target. expected [array slice] got [map]'),  # bracket
    ('$[1]', '["one element"]', None, 'index: invalid token out of range'),  # bracket
    ('$.*[1]', '[[1], [2,3]]', [3.0], ''),  # bracket
    ('$[-1]', '["first", "second", "third"]', 'third', ''),  # bracket
    ('$[-1]', '[]', None, 'index: invalid token out of range'),  # bracket
    ('$[0]', '["first", "second", "third", "forth", "fifth"]', 'first', ''),  # bracket
    ("$[':']", '{ ":": "value", "another": "entry" }', 'value', ''),  # bracket
    ("$[']']", '{"]": 42}', 42.0, ''),  # bracket
    ("$['@']", '{ "@": "value", "another": "entry" }', 'value', ''),  # bracket
    ("$['.']", '{ ".": "value", "another": "entry" }', 'value', ''),  # bracket
    ("$['.*']", '{"key": 42, ".*": 1, "": 10}', 1.0, ''),  # bracket
    ('$[\'"\']', '{ "\\"": "value", "another": "entry" }', 'value', ''),  # bracket
    ("$['\\\\']", '{"\\\\":"value"}', 'value', ''),  # bracket
    ("$['\\'']", '{"\'":"value"}', 'value', ''),  # bracket
    ("$['0']", '{ "0": "value" }', 'value', ''),  # bracket
    ("$['$']", '{ "$": "value", "another": "entry" }', 'value', ''),  # bracket
    ('$[\':@."$,*\\\'\\\\\']', '{":@.\\"$,*\'\\\\": 42}', 42.0, ''),  # bracket
    ("$['single'quote']", '{"single\'quote":"value"}', None, "invalid JSONPath selector '$['single'quote']' invalid token. '['single'quote']' does not match any token format"),  # bracket
    ("$[',']", '{ ",": "value", "another": "entry" }', 'value', ''),  # bracket
    ("$['*']", '{ "*": "value", "another": "entry" }', 'value', ''),  # bracket
    ("$['*']", '{ "another": "entry" }', None, "key: invalid token key '*' not found"),  # bracket
    ("$[ 'a' ]", '{" a": 1, "a": 2, " a ": 3, "a ": 4, " \'a\' ": 5, " \'a": 6, "a\' ": 7, " \\"a\\" ": 8, "\\"a\\"": 9}', 2.0, ''),  # bracket
    ("$['ni.*']", '{"nice": 42, "ni.*": 1, "mice": 100}', 1.0, ''),  # bracket
    ("$['two'.'some']", '{ "one": {"key": "value"}, "two": {"some": "more", "key": "other value"}, "two.some": "42", "two\'.\'some": "43" }', None, "invalid JSONPath selector '$['two'.'some']' invalid token. '['two'.'some']' does not match any token format"),  # bracket
    ('$[two.some]', '{ "one": {"key": "value"}, "two": {"some": "more", "key": "other value"}, "two.some": "42" }', None, "invalid JSONPath selector '$[two.some]' invalid token. '[two.some]' does not match any token format"),  # bracket
    ('$[*]', '[ "string", 42, { "key": "value" }, [0, 1] ]', ['string', 42.0, {'key': 'value'}, [0.0, 1.0]], ''),  # bracket
    ('$[*]', '[]', [], ''),  # bracket
    ('$[*]', '{}', [], ''),  # bracket
    ('$[*]', '[ 40, null, 42 ]', [40.0, None, 42.0], ''),  # bracket
    ('$[*]', '{ "some": "string", "int": 42, "object": { "key": "value" }, "array": [0, 1] }', ['string', 42.0, {'key': 'value'}, [0.0, 1.0]], ''),  # bracket
    ('$[0:2][*]', '[[1, 2], ["a", "b"], [0, 0]]', [[1.0, 2.0], ['a', 'b']], ''),  # bracket
    ('$[*].bar[*]', '[{"bar": [42]}]', [[42.0]], ''),  # bracket
    ('$..[*]', '{ "key": "value", "another key": { "complex": "string", "primitives": [0, 1] } }', ['value', {'complex': 'string', 'primitives': [0.0, 1.0]}, [0.0, 1.0], 'string', 0.0, 1.0], ''),  # bracket
    ('$[key]', '{ "key": "value" }', None, "invalid JSONPath selector '$[key]' invalid token. '[key]' does not match any token format"),  # bracket
    ('@.a', '{"a": 1}', 1.0, ''),  # dot
    ("$.['key']", '{ "key": "value", "other": {"key": [{"key": 42}]} }', 'value', ''),  # dot
    ('$.["key"]', '{ "key": "value", "other": {"key": [{"key": 42}]} }', 'value', ''),  # dot
    ('$.[key]', '{ "key": "value", "other": {"key": [{"key": 42}]} }', None, "invalid JSONPath selector '$.[key]' invalid token. '[key]' does not match any token format"),  # dot
    ('$.key', '{ "key": "value" }', 'value', ''),  # dot
    ('$.key', '[0, 1]', None, 'key: invalid token target. expected [map] got [slice]'),  # dot
    ('$.key', '{ "key": ["first", "second"] }', ['first', 'second'], ''),  # dot
    ('$.id', '[{"id": 2}]', None, 'key: invalid token target. expected [map] got [slice]'),  # dot
    ('$.key', '{ "key": {} }', {}, ''),  # dot
    ('$.key', '{ "key": null }', None, ''),  # dot
    ('$.missing', '{"key": "value"}', None, "key: invalid token key 'missing' not found"),  # dot
    ('$[0:2].key', '[{"key": "ey"}, {"key": "bee"}, {"key": "see"}]', ['ey', 'bee'], ''),  # dot
    ('$..[1].key', '{ "k": [{"key": "some value"}, {"key": 42}], "kk": [[{"key": 100}, {"key": 200}, {"key": 300}], [{"key": 400}, {"key": 500}, {"key": 600}]], "key": [0, 1] }', [200.0, 42.0, 500.0], ''),  # dot
    ('$[*].a', '[{"a": 1},{"a": 1}]', [1.0, 1.0], ''),  # dot
    ('$[*].a', '[{"a": 1}]', [1.0], ''),  # dot
    ('$[*].a', '[{"a": 1},{"b": 1}]', [1.0], ''),  # dot
    ('$[?(@.id==42)].name', '[{"id": 42, "name": "forty-two"}, {"id": 1, "name": "one"}]', ['forty-two'], ''),  # dot
    ('$..key', '{ "object": { "key": "value", "array": [ {"key": "something"}, {"key": {"key": "russian dolls"}} ] }, "key": "top" }', ['russian dolls', 'something', 'top', 'value', {'key': 'russian dolls'}], ''),  # dot
    ('$.store..price', '{ "store": { "book": [ { "category": "reference", "author": "Nigel Rees", "title": "Sayings of the Century", "price": 8.95 }, { "category": "fiction", "author": "Evelyn Waugh", "title": "Sword of Honour", "price": 12.99 }, { "category": "fiction", "author": "Herman Melville", "title": "Moby Dick", "isbn": "0-553-21311-3", "price": 8.99 }, { "category": "fiction", "author": "J. R. R. Tolkien", "title": "The Lord of the Rings", "isbn": "0-395-19395-8", "price": 22.99 } ], "bicycle": { "color": "red", "price": 19.95 } } }', [12.99, 19.95, 22.99, 8.95, 8.99], ''),  # dot
    ('$...key', '{ "object": { "key": "value", "array": [ {"key": "something"}, {"key": {"key": "russian dolls"}} ] }, "key": "top" }', ['russian dolls', 'something', 'top', 'value', {'key': 'russian dolls'}], ''),  # dot
    ('$[0,2].key', '[{"key": "ey"}, {"key": "bee"}, {"key": "see"}]', ['ey', 'see'], ''),  # dot
    ("$['one','three'].key", '{ "one": {"key": "value"}, "two": {"k": "v"}, "three": {"some": "more", "key": "other value"} }', ['value', 'other value'], ''),  # dot
    ('$.key-dash', '{ "key": 42, "key-": 43, "-": 44, "dash": 45, "-dash": 46, "": 47, "key-dash": "value", "something": "else" }', 'value', ''),  # dot
    ('$."key"', '{ "key": "value", "\\"key\\"": 42 }', 42.0, ''),  # dot
    ('$.."key"', '{ "object": { "key": "value", "\\"key\\"": 100, "array": [ {"key": "something", "\\"key\\"": 0}, {"key": {"key": "russian dolls"}, "\\"key\\"": {"\\"key\\"": 99}} ] }, "key": "top", "\\"key\\"": 42 }', [0.0, 42.0, 99.0, 100.0, {'"key"': 99.0}], ''),  # dot
    ('$.', '{"key": 42, "": 9001, "\'\'": "nice"}', None, "invalid JSONPath selector '$.' invalid token. token string is empty"),  # dot
    ('$.in', '{ "in": "value" }', 'value', ''),  # dot
    ('$.length', '{ "length": "value" }', 'value', ''),  # dot
    ('$.length', '[4, 5, 6]', Int64(3), ''),  # dot
    ('$.null', '{ "null": "value" }', 'value', ''),  # dot
    ('$.true', '{ "true": "value" }', 'value', ''),  # dot
    ('$.$', '{ "$": "value" }', {'$': 'value'}, ''),  # dot
    ('$.屬性', '{ "屬性": "value" }', 'value', ''),  # dot
    ('$.2', '["first", "second", "third", "forth", "fifth"]', None, 'key: invalid token target. expected [map] got [slice]'),  # dot
    ('$.2', '{"a": "first", "2": "second", "b": "third"}', 'second', ''),  # dot
    ('$.-1', '["first", "second", "third", "forth", "fifth"]', None, 'key: invalid token target. expected [map] got [slice]'),  # dot
    ("$.'key'", '{ "key": "value", "\'key\'": 42 }', 42.0, ''),  # dot
    ("$..'key'", '{ "object": { "key": "value", "\'key\'": 100, "array": [ {"key": "something", "\'key\'": 0}, {"key": {"key": "russian dolls"}, "\'key\'": {"\'key\'": 99}} ] }, "key": "top", "\'key\'": 42 }', [42.0, 100.0, 0.0, {"'key'": 99.0}, 99.0], ''),  # dot
    ("$.'some.key'", '{"some.key": 42, "some": {"key": "value"}, "\'some.key\'": 43}', 43.0, ''),  # dot
    ('$. a', '{" a": 1, "a": 2, " a ": 3, "": 4}', 2.0, ''),  # dot
    ('$.*', '[ "string", 42, { "key": "value" }, [0, 1] ]', ['string', 42.0, {'key': 'value'}, [0.0, 1.0]], ''),  # dot
    ('$.*', '[]', [], ''),  # dot
    ('$.*', '{}', [], ''),  # dot
    ('$.*', '{ "some": "string", "int": 42, "object": { "key": "value" }, "array": [0, 1] }', ['string', 42.0, [0.0, 1.0], {'key': 'value'}], ''),  # dot
    ('$.*.bar.*', '[{"bar": [42]}]', [[42.0]], ''),  # dot
    ('$.*.*', '[[1, 2, 3], [4, 5, 6]]', [[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]], ''),  # dot
    ('$..*', '{ "key": "value", "another key": { "complex": "string", "primitives": [0, 1] } }', ['string', 'value', 0.0, 1.0, [0.0, 1.0], {'complex': 'string', 'primitives': [0.0, 1.0]}], ''),  # dot
    ('$..*', '[ 40, null, 42 ]', [40.0, 42.0, None], ''),  # dot
    ('$a', '{"a": 1, "$a": 2}', None, "invalid JSONPath selector '$a' unexpected token 'a' at index 1"),  # dot
    ('.key', '{ "key": "value" }', None, "invalid JSONPath selector '.key' unexpected token '.' at index 0"),  # dot
    ('key', '{ "key": "value" }', None, "invalid JSONPath selector 'key' unexpected token 'k' at index 0"),  # dot
    ('$[?(@.key)]', '{"key": 42, "another": {"key": 1}}', [{'key': 1.0}], ''),  # filter
    ('$..*[?(@.id>2)]', '[ { "complext": { "one": [ { "name": "first", "id": 1 }, { "name": "next", "id": 2 }, { "name": "another", "id": 3 }, { "name": "more", "id": 4 } ], "more": { "name": "next to last", "id": 5 } } }, { "name": "last", "id": 6 } ]', [[], [], [{'id': 5.0, 'name': 'next to last'}], [{'id': 3.0, 'name': 'another'}, {'id': 4.0, 'name': 'more'}], [], [], [], [], []], ''),  # filter
    ('$..[?(@.id==2)]', '{"id": 2, "more": [{"id": 2}, {"more": {"id": 2}}, {"id": {"id": 2}}, [{"id": 2}]]}', [{'id': 2.0}, {'id': 2.0}, {'id': 2.0}, {'id': 2.0}], ''),  # filter
    ('$[?(@.key+50==100)]', '[{"key": 60}, {"key": 50}, {"key": 10}, {"key": -50}, {"key+50": 100}]', [{'key': 50.0}], ''),  # filter
    ('$[?(@.key>42 && @.key<44)]', '[ {"key": 42}, {"key": 43}, {"key": 44} ]', [{'key': 43.0}], ''),  # filter
    ('$[?(@.key>0 && false)]', '[ {"key": 1}, {"key": 3}, {"key": "nice"}, {"key": true}, {"key": null}, {"key": false}, {"key": {}}, {"key": []}, {"key": -1}, {"key": 0}, {"key": ""} ]', [], ''),  # filter
    ('$[?(@.key>0 && true)]', '[ {"key": 1}, {"key": 3}, {"key": "nice"}, {"key": true}, {"key": null}, {"key": false}, {"key": {}}, {"key": []}, {"key": -1}, {"key": 0}, {"key": ""} ]', [{'key': 1.0}, {'key': 3.0}], ''),  # filter
    ('$[?(@.key>43 || @.key<43)]', '[ {"key": 42}, {"key": 43}, {"key": 44} ]', [{'key': 42.0}, {'key': 44.0}], ''),  # filter
    ('$[?(@.key>0 || false)]', '[ {"key": 1}, {"key": 3}, {"key": "nice"}, {"key": true}, {"key": null}, {"key": false}, {"key": {}}, {"key": []}, {"key": -1}, {"key": 0}, {"key": ""} ]', [{'key': 1.0}, {'key': 3.0}], ''),  # filter
    ('$[?(@.key>0 || true)]', '[ {"key": 1}, {"key": 3}, {"key": "nice"}, {"key": true}, {"key": null}, {"key": false}, {"key": {}}, {"key": []}, {"key": -1}, {"key": 0}, {"key": ""} ]', [{'key': 1.0}, {'key': 3.0}, {'key': -1.0}, {'key': 0.0}], ''),  # filter
    ("$[?(@['key']==42)]", '[ {"key": 0}, {"key": 42}, {"key": -1}, {"key": 41}, {"key": 43}, {"key": 42.0001}, {"key": 41.9999}, {"key": 100}, {"some": "value"} ]', [{'key': 42.0}], ''),  # filter
    ("$[?(@['@key']==42)]", '[ {"@key": 0}, {"@key": 42}, {"key": 42}, {"@key": 43}, {"some": "value"} ]', [{'@key': 42.0}], ''),  # filter
    ('$[?(@[-1]==2)]', '[[2, 3], ["a"], [0, 2], [2]]', [[0.0, 2.0], [2.0]], ''),  # filter
    ("$[?(@[1]=='b')]", '[["a", "b"], ["x", "y"]]', [['a', 'b']], ''),  # filter
    ("$[?(@[1]=='b')]", '{"1": ["a", "b"], "2": ["x", "y"]}', [['a', 'b']], ''),  # filter
    ('$[?(@)]', '[ "some value", null, "value", 0, 1, -1, "", [], {}, false, true ]', ['some value', 'value', 1.0, -1.0, True], ''),  # filter
    ('$[?(@.a && (@.b || @.c))]', '[ { "a": true }, { "a": true, "b": true }, { "a": true, "b": true, "c": true }, { "b": true, "c": true }, { "a": true, "c": true }, { "c": true }, { "b": true } ]', [{'a': True, 'b': True, 'c': True}], ''),  # filter
    ('[?(@.a && @.b || @.c)]', '[ { "a": true, "b": true }, { "a": true, "b": true, "c": true }, { "b": true, "c": true }, { "a": true, "c": true }, { "a": true }, { "b": true }, { "c": true }, { "d": true }, {} ]', None, "invalid JSONPath selector '[?(@.a && @.b || @.c)]' unexpected token '[' at index 0"),  # filter
    ('$[?(@.key/10==5)]', '[{"key": 60}, {"key": 50}, {"key": 10}, {"key": -50}, {"key/10": 5}]', [{'key': 50.0}], ''),  # filter
    ("$[?(@.key-dash == 'value')]", '[ { "key-dash": "value" } ]', [], ''),  # filter
    ("$[?(@.2 == 'second')]", '[{"a": "first", "2": "second", "b": "third"}]', [{'2': 'second', 'a': 'first', 'b': 'third'}], ''),  # filter
    ("$[?(@.2 == 'third')]", '[["first", "second", "third", "forth", "fifth"]] ', [], ''),  # filter
    ('$[?()]', '[1, {"key": 42}, "value", null]', None, 'invalid expression. is empty'),  # filter
    ('$[?(@.key==42)]', '[ {"key": 0}, {"key": 42}, {"key": -1}, {"key": 1}, {"key": 41}, {"key": 43}, {"key": 42.0001}, {"key": 41.9999}, {"key": 100}, {"key": "some"}, {"key": "42"}, {"key": null}, {"key": 420}, {"key": ""}, {"key": {}}, {"key": []}, {"key": [42]}, {"key": {"key": 42}}, {"key": {"some": 42}}, {"some": "value"} ]', [{'key': 42.0}], ''),  # filter
    ('$[?(@==42)]', '[ 0, 42, -1, 41, 43, 42.0001, 41.9999, null, 100 ]', [42.0], ''),  # filter
    ('$[?(@.key==43)]', '[{"key": 42}]', [], ''),  # filter
    ('$[?(@.key==42)]', '{ "a": {"key": 0}, "b": {"key": 42}, "c": {"key": -1}, "d": {"key": 41}, "e": {"key": 43}, "f": {"key": 42.0001}, "g": {"key": 41.9999}, "h": {"key": 100}, "i": {"some": "value"} }', [{'key': 42.0}], ''),  # filter
    ('$[?(@.id==2)]', '{"id": 2}', [], ''),  # filter
    ('$[?(@.d==["v1","v2"])]', '[ { "d": [ "v1", "v2" ] }, { "d": [ "a", "b" ] }, { "d": "v1" }, { "d": "v2" }, { "d": {} }, { "d": [] }, { "d": null }, { "d": -1 }, { "d": 0 }, { "d": 1 }, { "d": "[\'v1\',\'v2\']" }, { "d": "[\'v1\', \'v2\']" }, { "d": "v1,v2" }, { "d": "[\\"v1\\", \\"v2\\"]" }, { "d": "[\\"v1\\",\\"v2\\"]" } ]', [{'d': ['v1', 'v2']}], ''),  # filter
    ('$[?(@[0:1]==[1])]', '[[1, 2, 3], [1], [2, 3], 1, 2]', [[1.0, 2.0, 3.0], [1.0]], ''),  # filter
    ('$[?(@.*==[1,2])]', '[[1,2], [2,3], [1], [2], [1, 2, 3], 1, 2, 3]', [[1.0, 2.0]], ''),  # filter
    ("$[?(@.d==['v1','v2'])]", '[ { "d": [ "v1", "v2" ] }, { "d": [ "a", "b" ] }, { "d": "v1" }, { "d": "v2" }, { "d": {} }, { "d": [] }, { "d": null }, { "d": -1 }, { "d": 0 }, { "d": 1 }, { "d": "[\'v1\',\'v2\']" }, { "d": "[\'v1\', \'v2\']" }, { "d": "v1,v2" }, { "d": "[\\"v1\\", \\"v2\\"]" }, { "d": "[\\"v1\\",\\"v2\\"]" } ]', [], ''),  # filter
    ('$[?((@.key<44)==false)]', '[{"key": 42}, {"key": 43}, {"key": 44}]', [{'key': 44.0}], ''),  # filter
    ('$[?(@.key==false)]', '[ { "some": "some value" }, { "key": true }, { "key": false }, { "key": null }, { "key": "value" }, { "key": "" }, { "key": 0 }, { "key": 1 }, { "key": -1 }, { "key": 42 }, { "key": {} }, { "key": [] } ]', [{'key': False}], ''),  # filter
    ('$[?(@.key==null)]', '[ { "some": "some value" }, { "key": true }, { "key": false }, { "key": null }, { "key": "value" }, { "key": "" }, { "key": 0 }, { "key": 1 }, { "key": -1 }, { "key": 42 }, { "key": {} }, { "key": [] } ]', [{'key': None}], ''),  # filter
    ('$[?(@[0:1]==1)]', '[[1, 2, 3], [1], [2, 3], 1, 2]', [], ''),  # filter
    ('$[?(@[*]==2)]', '[[1,2], [2,3], [1], [2], [1, 2, 3], 1, 2, 3]', [], ''),  # filter
    ('$[?(@.*==2)]', '[[1,2], [2,3], [1], [2], [1, 2, 3], 1, 2, 3]', [], ''),  # filter
    ('$[?(@.key==-0.123e2)]', '[{"key": -12.3}, {"key": -0.123}, {"key": -12}, {"key": 12.3}, {"key": 2}, {"key": "-0.123e2"}]', [{'key': -12.3}], ''),  # filter
    ('$[?(@.key==010)]', '[{"key": "010"}, {"key": "10"}, {"key": 10}, {"key": 0}, {"key": 8}]', [{'key': 10.0}], ''),  # filter
    ('$[?(@.d=={"k":"v"})]', '[ { "d": { "k": "v" } }, { "d": { "a": "b" } }, { "d": "k" }, { "d": "v" }, { "d": {} }, { "d": [] }, { "d": null }, { "d": -1 }, { "d": 0 }, { "d": 1 }, { "d": "[object Object]" }, { "d": "{\\"k\\": \\"v\\"}" }, { "d": "{\\"k\\":\\"v\\"}" }, "v" ]', [{'d': {'k': 'v'}}], ''),  # filter
    ('$[?(@.key=="value")]', '[ {"key": "some"}, {"key": "value"}, {"key": null}, {"key": 0}, {"key": 1}, {"key": -1}, {"key": ""}, {"key": {}}, {"key": []}, {"key": "valuemore"}, {"key": "morevalue"}, {"key": ["value"]}, {"key": {"some": "value"}}, {"key": {"key": "value"}}, {"some": "value"} ]', [{'key': 'value'}], ''),  # filter
    ('$[?(@.key=="Motörhead")]', '[ {"key": "something"}, {"key": "Mot\\u00f6rhead"}, {"key": "mot\\u00f6rhead"}, {"key": "Motorhead"}, {"key": "Motoo\\u0308rhead"}, {"key": "motoo\\u0308rhead"} ]', [{'key': 'Motörhead'}], ''),  # filter
    ('$[?(@.key=="hi@example.com")]', '[ {"key": "some"}, {"key": "value"}, {"key": "hi@example.com"} ]', [{'key': 'hi@example.com'}], ''),  # filter
    ('$[?(@.key=="some.value")]', '[ {"key": "some"}, {"key": "value"}, {"key": "some.value"} ]', [{'key': 'some.value'}], ''),  # filter
    ("$[?(@.key=='value')]", '[ {"key": "some"}, {"key": "value"} ]', [{'key': 'value'}], ''),  # filter
    ('$[?(@.key=="Mot\\u00f6rhead")]', '[ {"key": "something"}, {"key": "Mot\\u00f6rhead"}, {"key": "mot\\u00f6rhead"}, {"key": "Motorhead"}, {"key": "Motoo\\u0308rhead"}, {"key": "motoo\\u0308rhead"} ]', [], ''),  # filter
    ('$[?(@.key==true)]', '[ { "some": "some value" }, { "key": true }, { "key": false }, { "key": null }, { "key": "value" }, { "key": "" }, { "key": 0 }, { "key": 1 }, { "key": -1 }, { "key": 42 }, { "key": {} }, { "key": [] } ]', [{'key': True}], ''),  # filter
    ('$[?(@.key1==@.key2)]', '[ {"key1": 10, "key2": 10}, {"key1": 42, "key2": 50}, {"key1": 10}, {"key2": 10}, {}, {"key1": null, "key2": null}, {"key1": null}, {"key2": null}, {"key1": 0, "key2": 0}, {"key1": 0}, {"key2": 0}, {"key1": -1, "key2": -1}, {"key1": "", "key2": ""}, {"key1": false, "key2": false}, {"key1": false}, {"key2": false}, {"key1": true, "key2": true}, {"key1": [], "key2": []}, {"key1": {}, "key2": {}}, {"key1": {"a": 1, "b": 2}, "key2": {"b": 2, "a": 1}} ]', [{'key1': 10.0, 'key2': 10.0}, {'key1': None, 'key2': None}, {'key1': 0.0, 'key2': 0.0}, {'key1': -1.0, 'key2': -1.0}, {'key1': '', 'key2': ''}, {'key1': False, 'key2': False}, {'key1': True, 'key2': True}, {'key1': [], 'key2': []}, {'key1': {}, 'key2': {}}, {'key1': {'a': 1.0, 'b': 2.0}, 'key2': {'a': 1.0, 'b': 2.0}}], ''),  # filter
    ('$.items[?(@.key==$.value)]', '{"value": 42, "items": [{"key": 10}, {"key": 42}, {"key": 50}]}', [{'key': 42.0}], ''),  # filter
    ('$[?(@.key>42)]', '[ {"key": 0}, {"key": 42}, {"key": -1}, {"key": 41}, {"key": 43}, {"key": 42.0001}, {"key": 41.9999}, {"key": 100}, {"key": "43"}, {"key": "42"}, {"key": "41"}, {"key": "value"}, {"some": "value"} ]', [{'key': 43.0}, {'key': 42.0001}, {'key': 100.0}], ''),  # filter
    ('$[?(@.key>=42)]', '[ {"key": 0}, {"key": 42}, {"key": -1}, {"key": 41}, {"key": 43}, {"key": 42.0001}, {"key": 41.9999}, {"key": 100}, {"key": "43"}, {"key": "42"}, {"key": "41"}, {"key": "value"}, {"some": "value"} ]', [{'key': 42.0}, {'key': 43.0}, {'key': 42.0001}, {'key': 100.0}], ''),  # filter
    ('$[?(@.d in [2, 3])]', '[{"d": 1}, {"d": 2}, {"d": 1}, {"d": 3}, {"d": 4}]', [{'d': 2.0}, {'d': 3.0}], ''),  # filter
    ('$[?(2 in @.d)]', '[{"d": [1, 2, 3]}, {"d": [2]}, {"d": [1]}, {"d": [3, 4]}, {"d": [4, 2]}]', [{'d': [1.0, 2.0, 3.0]}, {'d': [2.0]}, {'d': [4.0, 2.0]}], ''),  # filter
    ('$[?(@.key<42)]', '[ {"key": 0}, {"key": 42}, {"key": -1}, {"key": 41}, {"key": 43}, {"key": 42.0001}, {"key": 41.9999}, {"key": 100}, {"key": "43"}, {"key": "42"}, {"key": "41"}, {"key": "value"}, {"some": "value"} ]', [{'key': 0.0}, {'key': -1.0}, {'key': 41.0}, {'key': 41.9999}], ''),  # filter
    ('$[?(@.key<=42)]', '[ {"key": 0}, {"key": 42}, {"key": -1}, {"key": 41}, {"key": 43}, {"key": 42.0001}, {"key": 41.9999}, {"key": 100}, {"key": "43"}, {"key": "42"}, {"key": "41"}, {"key": "value"}, {"some": "value"} ]', [{'key': 0.0}, {'key': 42.0}, {'key': -1.0}, {'key': 41.0}, {'key': 41.9999}], ''),  # filter
    ('$[?(@.key*2==100)]', '[{"key": 60}, {"key": 50}, {"key": 10}, {"key": -50}, {"key*2": 100}]', [{'key': 50.0}], ''),  # filter
    ('$[?(!(@.key==42))]', '[ {"key": 0}, {"key": 42}, {"key": -1}, {"key": 41}, {"key": 43}, {"key": 42.0001}, {"key": 41.9999}, {"key": 100}, {"key": "43"}, {"key": "42"}, {"key": "41"}, {"key": "value"}, {"some": "value"} ]', [{'key': 0.0}, {'key': -1.0}, {'key': 41.0}, {'key': 43.0}, {'key': 42.0001}, {'key': 41.9999}, {'key': 100.0}, {'key': '43'}, {'key': '42'}, {'key': '41'}, {'key': 'value'}], ''),  # filter
    ('$[?(!(@.key<42))]', '[ {"key": 0}, {"key": 42}, {"key": -1}, {"key": 41}, {"key": 43}, {"key": 42.0001}, {"key": 41.9999}, {"key": 100}, {"key": "43"}, {"key": "42"}, {"key": "41"}, {"key": "value"}, {"some": "value"} ]', [{'key': 42.0}, {'key': 43.0}, {'key': 42.0001}, {'key': 100.0}], ''),  # filter
    ('$[?(!@.key)]', '[ { "some": "some value" }, { "key": true }, { "key": false }, { "key": null }, { "key": "value" }, { "key": "" }, { "key": 0 }, { "key": 1 }, { "key": -1 }, { "key": 42 }, { "key": {} }, { "key": [] } ]', [{'key': False}, {'key': None}, {'key': 0.0}], ''),  # filter
    ('$[?(@.key!=42)]', '[ {"key": 0}, {"key": 42}, {"key": -1}, {"key": 1}, {"key": 41}, {"key": 43}, {"key": 42.0001}, {"key": 41.9999}, {"key": 100}, {"key": "some"}, {"key": "42"}, {"key": null}, {"key": 420}, {"key": ""}, {"key": {}}, {"key": []}, {"key": [42]}, {"key": {"key": 42}}, {"key": {"some": 42}}, {"some": "value"} ]', [{'key': 0.0}, {'key': -1.0}, {'key': 1.0}, {'key': 41.0}, {'key': 43.0}, {'key': 42.0001}, {'key': 41.9999}, {'key': 100.0}, {'key': 'some'}, {'key': '42'}, {'key': None}, {'key': 420.0}, {'key': ''}, {'key': {}}, {'key': []}, {'key': [42.0]}, {'key': {'key': 42.0}}, {'key': {'some': 42.0}}], ''),  # filter
    ('$[*].bookmarks[?(@.page == 45)]^^^', '[ { "title": "Sayings of the Century", "bookmarks": [{ "page": 40 }] }, { "title": "Sword of Honour", "bookmarks": [ { "page": 35 }, { "page": 45 } ] }, { "title": "Moby Dick", "bookmarks": [ { "page": 3035 }, { "page": 45 } ] } ]', [[], [], []], ''),  # filter
    ('$[?(@.name=~/hello.*/)]', '[ {"name": "hullo world"}, {"name": "hello world"}, {"name": "yes hello world"}, {"name": "HELLO WORLD"}, {"name": "good bye"} ]', [], ''),  # filter
    ('$[?(@.name=~/@.pattern/)]', '[ {"name": "hullo world"}, {"name": "hello world"}, {"name": "yes hello world"}, {"name": "HELLO WORLD"}, {"name": "good bye"}, {"pattern": "hello.*"} ]', [], ''),  # filter
    ('$[?(@[*]>=4)]', '[[1,2],[3,4],[5,6]]', [], ''),  # filter
    ('$.x[?(@[*]>=$.y[*])]', '{"x":[[1,2],[3,4],[5,6]],"y":[3,4,5]}', [], ''),  # filter
    ('$[?(@.key=42)]', '[ {"key": 0}, {"key": 42}, {"key": -1}, {"key": 1}, {"key": 41}, {"key": 43}, {"key": 42.0001}, {"key": 41.9999}, {"key": 100}, {"key": "some"}, {"key": "42"}, {"key": null}, {"key": 420}, {"key": ""}, {"key": {}}, {"key": []}, {"key": [42]}, {"key": {"key": 42}}, {"key": {"some": 42}}, {"some": "value"} ]', [], ''),  # filter
    ('$[?(@.a[?(@.price>10)])]', '[ { "a": [{"price": 1}, {"price": 3}] }, { "a": [{"price": 11}] }, { "a": [{"price": 8}, {"price": 12}, {"price": 3}] }, { "a": [] } ]', [{'a': [{'price': 11.0}]}, {'a': [{'price': 8.0}, {'price': 12.0}, {'price': 3.0}]}], ''),  # filter
    ("$[?(@.address.city=='Berlin')]", '[ { "address": { "city": "Berlin" } }, { "address": { "city": "London" } } ]', [{'address': {'city': 'Berlin'}}], ''),  # filter
    ('$[?(@.key-50==-100)]', '[{"key": 60}, {"key": 50}, {"key": 10}, {"key": -50}, {"key-50": -100}]', [{'key': -50.0}], ''),  # filter
    ('$[?(1==1)]', '[1, 3, "nice", true, null, false, {}, [], -1, 0, ""]', [1.0, 3.0, 'nice', True, None, False, {}, [], -1.0, 0.0, ''], ''),  # filter
    ('$[?(@.key===42)]', '[ {"key": 0}, {"key": 42}, {"key": -1}, {"key": 1}, {"key": 41}, {"key": 43}, {"key": 42.0001}, {"key": 41.9999}, {"key": 100}, {"key": "some"}, {"key": "42"}, {"key": null}, {"key": 420}, {"key": ""}, {"key": {}}, {"key": []}, {"key": [42]}, {"key": {"key": 42}}, {"key": {"some": 42}}, {"some": "value"} ]', [], ''),  # filter
    ('$[?(@.key)]', '[ { "some": "some value" }, { "key": true }, { "key": false }, { "key": null }, { "key": "value" }, { "key": "" }, { "key": 0 }, { "key": 1 }, { "key": -1 }, { "key": 42 }, { "key": {} }, { "key": [] } ]', [{'key': True}, {'key': 'value'}, {'key': 1.0}, {'key': -1.0}, {'key': 42.0}], ''),  # filter
    ('$.*[?(@.key)]', '[ { "some": "some value" }, { "key": "value" } ]', [[], []], ''),  # filter
    ('$..[?(@.id)]', '{"id": 2, "more": [{"id": 2}, {"more": {"id": 2}}, {"id": {"id": 2}}, [{"id": 2}]]}', [{'id': 2.0}, {'id': {'id': 2.0}}, {'id': 2.0}, {'id': 2.0}, {'id': 2.0}], ''),  # filter
    ('$[?(false)]', '[1, 3, "nice", true, null, false, {}, [], -1, 0, ""]', [], ''),  # filter
    ('$[?(@..child)]', '[{"key": [{"child": 1}, {"child": 2}]}, {"key": [{"child": 2}]}, {"key": [{}]}, {"key": [{"something": 42}]}, {}]', [{'key': [{'child': 1.0}, {'child': 2.0}]}, {'key': [{'child': 2.0}]}], ''),  # filter
    ('$[?(null)]', '[1, 3, "nice", true, null, false, {}, [], -1, 0, ""]', [], ''),  # filter
    ('$[?(true)]', '[1, 3, "nice", true, null, false, {}, [], -1, 0, ""]', [1.0, 3.0, 'nice', True, None, False, {}, [], -1.0, 0.0, ''], ''),  # filter
    ('$[?@.key==42]', '[ {"key": 0}, {"key": 42}, {"key": -1}, {"key": 1}, {"key": 41}, {"key": 43}, {"key": 42.0001}, {"key": 41.9999}, {"key": 100}, {"key": "some"}, {"key": "42"}, {"key": null}, {"key": 420}, {"key": ""}, {"key": {}}, {"key": []}, {"key": [42]}, {"key": {"key": 42}}, {"key": {"some": 42}}, {"some": "value"} ]', None, "invalid JSONPath selector '$[?@.key==42]' invalid token. '[?@.key==42]' does not match any token format"),  # filter
    ('$[?(@.key)]', '[ { "some": "some value" }, { "key": true }, { "key": false }, { "key": null }, { "key": "value" }, { "key": "" }, { "key": 0 }, { "key": 1 }, { "key": -1 }, { "key": 42 }, { "key": {} }, { "key": [] } ]', [{'key': True}, {'key': 'value'}, {'key': 1.0}, {'key': -1.0}, {'key': 42.0}], ''),  # filter
    ('', '{"a": 42, "": 21}', None, "invalid JSONPath selector '' unexpected token '' at index 0"),  # misc
    ('$.data.sum()', '{"data": [1,2,3,4]}', None, 'key: invalid token target. expected [map] got [slice]'),  # misc
    ('$(key,more)', '{"key": 1, "some": 2, "more": 3}', None, "invalid JSONPath selector '$(key,more)' unexpected token '(' at index 1"),  # misc
    ('$..', '[{"a": {"b": "c"}}, [0, 1]]', [[{'a': {'b': 'c'}}, [0.0, 1.0]], {'a': {'b': 'c'}}, {'b': 'c'}, 'c', [0.0, 1.0], 0.0, 1.0], ''),  # misc
    ('$.key..', '{"some key": "value", "key": {"complex": "string", "primitives": [0, 1]}}', [{'complex': 'string', 'primitives': [0.0, 1.0]}, [0.0, 1.0], 0.0, 1.0, 'string'], ''),  # misc
    ('$', '{ "key": "value", "another key": { "complex": [ "a", 1 ] } }', {'key': 'value', 'another key': {'complex': ['a', 1.0]}}, ''),  # misc
    ('$[(@.length-1)]', '["first", "second", "third", "forth", "fifth"]', 'fifth', ''),  # misc
    ('$[0,1]', '["first", "second", "third"]', ['first', 'second'], ''),  # union
    ('$[0,0]', '["a"]', ['a', 'a'], ''),  # union
    ("$['a','a']", '{"a":1}', [1.0, 1.0], ''),  # union
    ('$[?(@.key<3),?(@.key>6)]', '[{"key": 1}, {"key": 8}, {"key": 3}, {"key": 10}, {"key": 7}, {"key": 2}, {"key": 6}, {"key": 4}]', [], ''),  # union
    ("$['key','another']", '{ "key": "value", "another": "entry" }', ['value', 'entry'], ''),  # union
    ("$['missing','key']", '{ "key": "value", "another": "entry" }', ['value'], ''),  # union
    ("$[:]['c','d']", '[{"c":"cc1","d":"dd1","e":"ee1"},{"c":"cc2","d":"dd2","e":"ee2"}]', [['cc1', 'dd1'], ['cc2', 'dd2']], ''),  # union
    ("$[0]['c','d']", '[{"c":"cc1","d":"dd1","e":"ee1"},{"c":"cc2","d":"dd2","e":"ee2"}]', ['cc1', 'dd1'], ''),  # union
    ("$.*['c','d']", '[{"c":"cc1","d":"dd1","e":"ee1"},{"c":"cc2","d":"dd2","e":"ee2"}]', [['cc1', 'dd1'], ['cc2', 'dd2']], ''),  # union
    ("$..['c','d']", '[{"c":"cc1","d":"dd1","e":"ee1"}, {"c": "cc2", "child": {"d": "dd2"}}, {"c": "cc3"}, {"d": "dd4"}, {"child": {"c": "cc5"}}]', ['cc1', 'dd1', 'cc2', 'dd2', 'cc3', 'dd4', 'cc5'], ''),  # union
    ('$[4,1]', '[1,2,3,4,5]', [5.0, 2.0], ''),  # union
    ('$.*[0,:5]', '{ "a": [ "string", null, true ], "b": [ false, "string", 5.4 ] }', None, "invalid JSONPath selector '$.*[0,:5]' invalid token. '[0,:5]' does not match any token format"),  # union
    ('$[1:3,4]', '[1,2,3,4,5]', None, "invalid JSONPath selector '$[1:3,4]' invalid token. '[1:3,4]' does not match any token format"),  # union
    ('$[ 0 , 1 ]', '["first", "second", "third"]', ['first', 'second'], ''),  # union
    ('$[*,1]', '["first", "second", "third", "forth", "fifth"]', None, "invalid JSONPath selector '$[*,1]' invalid token. '[*,1]' does not match any token format"),  # union
]


# jsonpath_test.go Test_SpecificationTests: selector and the elements expected from SAMPLE
SPECIFICATION: list[tuple[Any, ...]] = [
    ('$.store.book[*].author', ['Nigel Rees', 'Evelyn Waugh', 'Herman Melville', 'J. R. R. Tolkien']),
    ('$..author', ['Nigel Rees', 'Evelyn Waugh', 'Herman Melville', 'J. R. R. Tolkien']),
    ('$.store.*', [[{'category': 'reference', 'author': 'Nigel Rees', 'title': 'Sayings of the Century', 'price': 8.95}, {'category': 'fiction', 'author': 'Evelyn Waugh', 'title': 'Sword of Honour', 'price': 12.99}, {'category': 'fiction', 'author': 'Herman Melville', 'title': 'Moby Dick', 'isbn': '0-553-21311-3', 'price': 8.99}, {'category': 'fiction', 'author': 'J. R. R. Tolkien', 'title': 'The Lord of the Rings', 'isbn': '0-395-19395-8', 'price': 22.99}], {'color': 'red', 'price': 19.95}]),
    ('$.store..price', [8.95, 12.99, 8.99, 22.99, 19.95]),
    ('$..book[2]', [{'category': 'fiction', 'author': 'Herman Melville', 'title': 'Moby Dick', 'isbn': '0-553-21311-3', 'price': 8.99}]),
    ('$..book[(@.length-1)]', [{'category': 'fiction', 'author': 'J. R. R. Tolkien', 'title': 'The Lord of the Rings', 'isbn': '0-395-19395-8', 'price': 22.99}]),
    ('$..book[-1:]', [{'category': 'fiction', 'author': 'J. R. R. Tolkien', 'title': 'The Lord of the Rings', 'isbn': '0-395-19395-8', 'price': 22.99}]),
    ('$..book[0,1]', [{'category': 'reference', 'author': 'Nigel Rees', 'title': 'Sayings of the Century', 'price': 8.95}, {'category': 'fiction', 'author': 'Evelyn Waugh', 'title': 'Sword of Honour', 'price': 12.99}]),
    ('$..book[:2]', [{'category': 'reference', 'author': 'Nigel Rees', 'title': 'Sayings of the Century', 'price': 8.95}, {'category': 'fiction', 'author': 'Evelyn Waugh', 'title': 'Sword of Honour', 'price': 12.99}]),
    ('$..book[?(@.isbn)]', [{'category': 'fiction', 'author': 'Herman Melville', 'title': 'Moby Dick', 'isbn': '0-553-21311-3', 'price': 8.99}, {'category': 'fiction', 'author': 'J. R. R. Tolkien', 'title': 'The Lord of the Rings', 'isbn': '0-395-19395-8', 'price': 22.99}]),
    ('$..book[?(@.price<10)]', [{'category': 'reference', 'author': 'Nigel Rees', 'title': 'Sayings of the Century', 'price': 8.95}, {'category': 'fiction', 'author': 'Herman Melville', 'title': 'Moby Dick', 'isbn': '0-553-21311-3', 'price': 8.99}]),
    ('$..book[?(@.price<$.expensive)]', [{'category': 'reference', 'author': 'Nigel Rees', 'title': 'Sayings of the Century', 'price': 8.95}, {'category': 'fiction', 'author': 'Herman Melville', 'title': 'Moby Dick', 'isbn': '0-553-21311-3', 'price': 8.99}]),
    ('$..*', [{'book': [{'category': 'reference', 'author': 'Nigel Rees', 'title': 'Sayings of the Century', 'price': 8.95}, {'category': 'fiction', 'author': 'Evelyn Waugh', 'title': 'Sword of Honour', 'price': 12.99}, {'category': 'fiction', 'author': 'Herman Melville', 'title': 'Moby Dick', 'isbn': '0-553-21311-3', 'price': 8.99}, {'category': 'fiction', 'author': 'J. R. R. Tolkien', 'title': 'The Lord of the Rings', 'isbn': '0-395-19395-8', 'price': 22.99}], 'bicycle': {'color': 'red', 'price': 19.95}}, 10.0, [{'category': 'reference', 'author': 'Nigel Rees', 'title': 'Sayings of the Century', 'price': 8.95}, {'category': 'fiction', 'author': 'Evelyn Waugh', 'title': 'Sword of Honour', 'price': 12.99}, {'category': 'fiction', 'author': 'Herman Melville', 'title': 'Moby Dick', 'isbn': '0-553-21311-3', 'price': 8.99}, {'category': 'fiction', 'author': 'J. R. R. Tolkien', 'title': 'The Lord of the Rings', 'isbn': '0-395-19395-8', 'price': 22.99}], {'color': 'red', 'price': 19.95}, {'category': 'reference', 'author': 'Nigel Rees', 'title': 'Sayings of the Century', 'price': 8.95}, {'category': 'fiction', 'author': 'Evelyn Waugh', 'title': 'Sword of Honour', 'price': 12.99}, {'category': 'fiction', 'author': 'Herman Melville', 'title': 'Moby Dick', 'isbn': '0-553-21311-3', 'price': 8.99}, {'category': 'fiction', 'author': 'J. R. R. Tolkien', 'title': 'The Lord of the Rings', 'isbn': '0-395-19395-8', 'price': 22.99}, 'reference', 'Nigel Rees', 'Sayings of the Century', 8.95, 'fiction', 'Evelyn Waugh', 'Sword of Honour', 12.99, 'fiction', 'Herman Melville', 'Moby Dick', '0-553-21311-3', 8.99, 'fiction', 'J. R. R. Tolkien', 'The Lord of the Rings', '0-395-19395-8', 22.99, 'red', 19.95]),
]


# jsonpath_test.go Test_QueryString and Test_Query, selector_test.go Test_Selector_QueryString (JSON data only):
# selector, data, expected, error
QUERIES: list[tuple[Any, ...]] = [
    ('invalid', '{}', None, "invalid JSONPath selector 'invalid' unexpected token 'i' at index 0"),  # Test_QueryString
    ('$.expensive', '{}', None, "key: invalid token key 'expensive' not found"),  # Test_QueryString
    ('$.expensive', '{"expensive": "test"}', 'test', ''),  # Test_QueryString
    ('$.expensive', SAMPLE, Int64(10), ''),  # Test_QueryString
    ('$..author', SAMPLE, ['Nigel Rees', 'Evelyn Waugh', 'Herman Melville', 'J. R. R. Tolkien'], ''),  # Test_QueryString
    ('$.store.book.length', SAMPLE, Int64(4), ''),  # Test_QueryString
    ('$..book.length', SAMPLE, [Int64(4)], ''),  # Test_QueryString
    ('$.length', '[1,2,3]', Int64(3), ''),  # Test_QueryString
    ('$.expensive', '{}', None, "key: invalid token key 'expensive' not found"),  # Test_Selector_QueryString
    ('$.expensive', '{"expensive": "test"}', 'test', ''),  # Test_Selector_QueryString
    ('$.expensive', SAMPLE, Int64(10), ''),  # Test_Selector_QueryString
    ('$..author', SAMPLE, ['Nigel Rees', 'Evelyn Waugh', 'Herman Melville', 'J. R. R. Tolkien'], ''),  # Test_Selector_QueryString
    ('$.length', '[1,2,3]', Int64(3), ''),  # Test_Selector_QueryString
    ('$.expensive', 'null', None, 'key: invalid token target. expected [map] got [nil]'),  # Test_Query
    ('invalid', '{}', None, "invalid JSONPath selector 'invalid' unexpected token 'i' at index 0"),  # Test_Query
    ('$.expensive', '{}', None, "key: invalid token key 'expensive' not found"),  # Test_Query
]


# jsonpath_test.go Test_Compile: selectors refused
COMPILE_ERRORS: list[tuple[Any, ...]] = [
    ('', "invalid JSONPath selector '' unexpected token '' at index 0"),
    ('@.[1,(]', "invalid JSONPath selector '@.[1,(]' invalid token. '[1,(]' does not match any token format"),
]


# token/token_test.go Test_Tokenize: selector, token strings, error
TOKENIZE: list[tuple[Any, ...]] = [
    ('$', ['$'], ''),
    ('@', ['@'], ''),
    ('%', None, "unexpected token '%' at index 0"),
    ('$.store.book[*].author', ['$', 'store', 'book', '[*]', 'author'], ''),
    ('$..author', ['$', '..', 'author'], ''),
    ('$.store.*', ['$', 'store', '*'], ''),
    ('$.store..price', ['$', 'store', '..', 'price'], ''),
    ('$..book[2]', ['$', '..', 'book', '[2]'], ''),
    ('$..book[(@.length-1)]', ['$', '..', 'book', '[(@.length-1)]'], ''),
    ('$..book[-1:]', ['$', '..', 'book', '[-1:]'], ''),
    ('$..book[0,1]', ['$', '..', 'book', '[0,1]'], ''),
    ('$..book[:2]', ['$', '..', 'book', '[:2]'], ''),
    ('$..book[?(@.isbn)]', ['$', '..', 'book', '[?(@.isbn)]'], ''),
    ('$..book[?(@.price<10)]', ['$', '..', 'book', '[?(@.price<10)]'], ''),
    ('$..*', ['$', '..', '*'], ''),
    ('@.sub.query', ['@', 'sub', 'query'], ''),
    ('user.email', None, "unexpected token 'u' at index 0"),
    ("$['store']['book'][*]['author']", ['$', "['store']", "['book']", '[*]', "['author']"], ''),
    ("$['store'].book[*].author", ['$', "['store']", 'book', '[*]', 'author'], ''),
    ('$*', None, "unexpected token '*' at index 1"),
    ("$['store']book.author", ['$', "['store']", 'book', 'author'], ''),
    ('', None, "unexpected token '' at index 0"),
    ('$.store.book[($.totals[0])].author', ['$', 'store', 'book', '[($.totals[0])]', 'author'], ''),
    ("$.['book'].[*].author", ['$', "['book']", '[*]', 'author'], ''),
    ('@.isbn', ['@', 'isbn'], ''),
    ("@.'.'", ['@', "'.'"], ''),
]


# token/token_test.go Test_Parse: token string, the token made (described), error
PARSE: list[tuple[Any, ...]] = [
    ('', None, 'invalid token. token string is empty'),
    ("['fail'", None, "invalid token. '['fail'' does not match any token format"),
    ('[ ]', None, "invalid token. '[ ]' does not match any token format"),
    ('[?]', None, "invalid token. '[?]' does not match any token format"),
    ('[why though]', None, "invalid token. '[why though]' does not match any token format"),
    ("[1'2']", None, "invalid token. '[1'2']' does not match any token format"),
    ('[1(@.length)]', None, "invalid expression. invalid format '1(@.length)'"),
    ('$', 'root()', ''),
    ('store', "key('store')", ''),
    ('1', "key('1')", ''),
    ('book', "key('book')", ''),
    ('*', 'wildcard()', ''),
    ('author', "key('author')", ''),
    ('@', 'current()', ''),
    ('[*]', 'wildcard()', ''),
    ('..', 'recursive()', ''),
    ('[?(@.isbn)]', "filter('@.isbn')", ''),
    ('[2]', 'index(2)', ''),
    ('[(@.length-1)]', "script('@.length-1')", ''),
    ('[-1:]', 'range(-1, None, None)', ''),
    ('[1:(@.length-1)]', "range(1, expression('@.length-1'), None)", ''),
    ('[0,1]', 'union(0, 1)', ''),
    ("['first','last']", "union('first', 'last')", ''),
    ('[0,]', None, "invalid token. '[0,]' does not match any token format"),
    ('[,1]', None, "invalid token. '[,1]' does not match any token format"),
    ('[(0),]', None, "invalid token. '[(0),]' does not match any token format"),
    ("[0,'1',]", None, "invalid token. '[0,'1',]' does not match any token format"),
    ('[0,(@.length-1)]', "union(0, expression('@.length-1'))", ''),
    ("[0,'one',2,(1+2)]", "union(0, 'one', 2, expression('1+2'))", ''),
    ('[(@.length-2),(@.length-1),1]', "union(expression('@.length-2'), expression('@.length-1'), 1)", ''),
    ('[:2]', 'range(None, 2, None)', ''),
    ('[:(@.length-1)]', "range(None, expression('@.length-1'), None)", ''),
    ("[:'key']", None, "invalid expression. invalid format ''key''"),
    ('[0:(@.length-1):2]', "range(0, expression('@.length-1'), 2)", ''),
    ('[(@.length-1):1:2]', "range(expression('@.length-1'), 1, 2)", ''),
    ("['store']", "key('store')", ''),
    ('[store]', None, "invalid token. '[store]' does not match any token format"),
    ('[store,book]', None, "invalid token. '[store,book]' does not match any token format"),
    ("[(1+2*(3+4)+5')]", 'script("1+2*(3+4)+5\'")', ''),
    ("['this key has brackets ( and colons : and commas , but is not a union, range, or script']", "key('this key has brackets ( and colons : and commas , but is not a union, range, or script')", ''),
    ('[1,2:4]', None, "invalid token. '[1,2:4]' does not match any token format"),
    ('[1:2:3:]', None, "invalid token. '[1:2:3:]' does not match any token format"),
    ('[1:2:3:4]', None, "invalid token. '[1:2:3:4]' does not match any token format"),
    ("['key':'end]", None, "invalid expression. invalid format ''key''"),
    ('[::2]', 'range(None, None, 2)', ''),
    ('[:end:2]', None, "invalid token. '[:end:2]' does not match any token format"),
    ('length', 'length()', ''),
    ('[length]', None, "invalid token. '[length]' does not match any token format"),
    ("['length']", "key('length')", ''),
    ("['']", "key('')", ''),
    ("['1':(@.length)]", None, "invalid expression. invalid format ''1''"),
    ("[0:'1']", None, "invalid expression. invalid format ''1''"),
    ("[0:1:'1']", None, "invalid expression. invalid format ''1''"),
    ('[0:100:(1+1)]', "range(0, 100, expression('1+1'))", ''),
    ('[:10:1]', 'range(None, 10, 1)', ''),
    ('[1, 2]', 'union(1, 2)', ''),
    ('[1: 2]', 'range(1, 2, None)', ''),
    ("['key\\'s']", 'key("key\'s")', ''),
    ("[\\'key\\'s']", None, "invalid token. '[\\'key\\'s']' does not match any token format"),
    ('["key"]', "key('key')", ''),
    ('["key\'s"]', 'key("key\'s")', ''),
    ('["\\"keys\\""]', 'key(\'"keys"\')', ''),
    ('["one","two",\'three\']', "union('one', 'two', 'three')", ''),
]


# token/*_test.go Test_*Token_Apply (tokens built without options or stub engines): token, root, current,
# next tokens, expected, error
TOKEN_APPLY: list[tuple[Any, ...]] = [
    (CurrentToken(), None, {'name': 'first'}, [], {'name': 'first'}, ''),  # current
    (CurrentToken(), None, {'name': 'first'}, [KeyToken('name')], 'first', ''),  # current
    (ExpressionToken('', ENGINE.compile('')), None, None, [], None, 'invalid expression. is empty'),  # expression
    (FilterToken('', ENGINE.compile('')), None, None, [], None, 'invalid expression. is empty'),  # filter
    (IndexToken(0), None, None, [], None, 'index: invalid token target. expected [array slice] got [nil]'),  # index
    (IndexToken(5), None, 'Find(X)', [], None, 'index: invalid token target. expected [array slice] got [string]'),  # index
    (IndexToken(0), None, ['one', 'two', 'three'], [], 'one', ''),  # index
    (IndexToken(2), None, ['one', 'two', 'three'], [], 'three', ''),  # index
    (IndexToken(4), None, ['one', 'two', 'three'], [], None, 'index: invalid token out of range'),  # index
    (IndexToken(1), None, ['one', 2, 'three'], [], 2, ''),  # index
    (IndexToken(-1), None, ['one', 2, 'three'], [], 'three', ''),  # index
    (IndexToken(-2), None, ['one', 2, 'three'], [], 2, ''),  # index
    (IndexToken(-3), None, ['one', 2, 'three'], [], 'one', ''),  # index
    (IndexToken(-4), None, ['one', 2, 'three'], [], None, 'index: invalid token out of range'),  # index
    (IndexToken(1), None, [{'name': 'one', 'value': 1}, {'name': 'two', 'value': 2}, {'name': 'three', 'value': 3}], [KeyToken('name')], 'two', ''),  # index
    (IndexToken(1), None, {'a': {'name': 'one', 'value': 1}, 'c': {'name': 'three', 'value': 3}, 'b': {'name': 'two', 'value': 2}}, [], None, 'index: invalid token target. expected [array slice] got [map]'),  # index
    (KeyToken('key'), None, None, [], None, 'key: invalid token target. expected [map] got [nil]'),  # key
    (KeyToken('key'), None, '', [], None, 'key: invalid token target. expected [map] got [string]'),  # key
    (KeyToken('key'), None, {'key': True}, [], True, ''),  # key
    (KeyToken('missing'), None, {'key': True}, [], None, "key: invalid token key 'missing' not found"),  # key
    (KeyToken('key'), None, {'key': {'next': 'nested target'}}, [KeyToken('next')], 'nested target', ''),  # key
    (KeyToken("key's"), None, {"key's": [1, 2, 3]}, [], [1, 2, 3], ''),  # key
    (LengthToken(), None, None, [], None, 'length: invalid token target. expected [array map slice string] got [nil]'),  # length
    (LengthToken(), None, ['one', 'two', 'three', 4, 5], [], 5, ''),  # length
    (LengthToken(), None, {'one': 1, 'two': 2, 'three': 3}, [], 3, ''),  # length
    (LengthToken(), None, {'one': '1', 'two': '2', 'three': '3'}, [], 3, ''),  # length
    (LengthToken(), None, 'this is 26 characters long', [], 26, ''),  # length
    (LengthToken(), None, 'this is 26 characters long', [CurrentToken()], 26, ''),  # length
    (LengthToken(), None, {'length': 'this would be the length'}, [], 'this would be the length', ''),  # length
    (RangeToken(None, None, None), None, ['one', 'two', 'three'], [], ['one', 'two', 'three'], ''),  # range
    (RangeToken(0, None, None), None, ['one', 'two', 'three'], [], ['one', 'two', 'three'], ''),  # range
    (RangeToken(1, None, None), None, ['one', 'two', 'three'], [], ['two', 'three'], ''),  # range
    (RangeToken(1, 2, None), None, ['one', 'two', 'three'], [], ['two'], ''),  # range
    (RangeToken(1, None, 3), None, ['one', 'two', 'three'], [], ['two'], ''),  # range
    (RangeToken(0, 3, 2), None, ['one', 'two', 'three'], [], ['one', 'three'], ''),  # range
    (RangeToken(0, 2, None), None, ['one', 'two', 'three'], [], ['one', 'two'], ''),  # range
    (RangeToken(0, 2, 2), None, ['one', 'two', 'three'], [], ['one'], ''),  # range
    (RangeToken(0, None, 2), None, ['one', 'two', 'three'], [], ['one', 'three'], ''),  # range
    (RangeToken(0, 100, None), None, [1, 2, 3], [], [1, 2, 3], ''),  # range
    (RangeToken(IndexToken(0), None, None), None, ['one', 'two', 'three'], [], None, 'range: invalid token unexpected expression result. expected [int] got [string]'),  # range
    (RangeToken(0, IndexToken(0), None), None, ['one', 'two', 'three'], [], None, 'range: invalid token unexpected expression result. expected [int] got [string]'),  # range
    (RangeToken(0, None, IndexToken(0)), None, ['one', 'two', 'three'], [], None, 'range: invalid token unexpected expression result. expected [int] got [string]'),  # range
    (RangeToken(0, None, None), None, [{'name': 'one'}, {'name': 'two'}, {'name': 'three'}, {'name': 'four'}, {'name': 'five'}], [KeyToken('name')], ['one', 'two', 'three', 'four', 'five'], ''),  # range
    (RangeToken(1, -2, None), None, [{'name': 'one'}, {'name': 'two'}, {'name': 'three'}, {'name': 'four'}, {'name': 'five'}], [KeyToken('name')], ['two', 'three'], ''),  # range
    (RangeToken(10, None, None), None, 'this is a substring', [], None, 'range: invalid token target. expected [array slice] got [string]'),  # range
    (RangeToken(1, None, None), None, ['one', 'two', 'three', 'four'], [IndexToken(0)], 'two', ''),  # range
    (RangeToken(None, None, None), None, None, [], None, 'range: invalid token target. expected [array slice] got [nil]'),  # range
    (RangeToken(15, None, None), None, [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 'ten', 'eleven', 'twelve', 13], [], [], ''),  # range
    (RangeToken(None, 15, None), None, [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 'ten', 'eleven', 'twelve', 13], [], [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 'ten', 'eleven', 'twelve', 13], ''),  # range
    (RangeToken(None, None, 0), None, [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 'ten', 'eleven', 'twelve', 13], [], None, 'range: invalid token out of range'),  # range
    (RangeToken(None, None, None), None, [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 'ten', 'eleven', 'twelve', 13], [], [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 'ten', 'eleven', 'twelve', 13], ''),  # range
    (RangeToken(None, None, None), None, [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 'ten', 'eleven', 'twelve', 13], [], [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 'ten', 'eleven', 'twelve', 13], ''),  # range
    (RangeToken(None, -1, None), None, [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 'ten', 'eleven', 'twelve', 13], [], [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 'ten', 'eleven', 'twelve'], ''),  # range
    (RangeToken(None, -3, None), None, [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 'ten', 'eleven', 'twelve', 13], [], [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 'ten'], ''),  # range
    (RangeToken(-3, -1, None), None, [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 'ten', 'eleven', 'twelve', 13], [], ['eleven', 'twelve'], ''),  # range
    (RangeToken(None, None, 2), None, ['one', 'two', 'three', 'four', 'five'], [], ['one', 'three', 'five'], ''),  # range
    (RangeToken(1, None, 2), None, ['one', 'two', 'three', 'four', 'five'], [], ['two', 'four'], ''),  # range
    (RangeToken(1, 1, None), None, ['one', 'two', 'three', 'four', 'five'], [], [], ''),  # range
    (RangeToken(1, 2, None), None, ['one', 'two', 'three', 'four', 'five'], [], ['two'], ''),  # range
    (RangeToken(None, None, -1), None, ['one', 'two', 'three', 'four', 'five'], [], ['five', 'four', 'three', 'two', 'one'], ''),  # range
    (RangeToken(1, 2, -1), None, ['one', 'two', 'three', 'four', 'five'], [], ['two'], ''),  # range
    (RangeToken(1, 2, -1), None, {'b': 'bee', 'a': 'ae', 'c': 'see', 'e': 'ee', 'd': 'dee'}, [], None, 'range: invalid token target. expected [array slice] got [map]'),  # range
    (RangeToken(1, 5, -1), None, ['one', 'two', 'three', 'four', 'five'], [], ['five', 'four', 'three', 'two'], ''),  # range
    (RangeToken(1, 5, -1), None, 'abcdef', [], None, 'range: invalid token target. expected [array slice] got [string]'),  # range
    (RangeToken(-10, None, None), None, ['one', 'two', 'three', 'four', 'five'], [], ['one', 'two', 'three', 'four', 'five'], ''),  # range
    (RangeToken(0, -10, None), None, ['one', 'two', 'three', 'four', 'five'], [], [], ''),  # range
    (RangeToken(None, None, None), None, ['one', 'two', 'three', 'four', 'five'], [KeyToken('')], [], ''),  # range
    (RecursiveToken(), None, [None, 'one'], [], [[None, 'one'], 'one'], ''),  # recursive
    (RecursiveToken(), None, {'key1': 'one', 'k2': 'two', 'k3': 'three'}, [], [{'key1': 'one', 'k2': 'two', 'k3': 'three'}, 'one', 'two', 'three'], ''),  # recursive
    (RecursiveToken(), None, [{'name': 'one', 'nested': {'name': 'four'}}, {'name': 'two'}, {'name': 'three'}], [KeyToken('name')], ['one', 'two', 'three', 'four'], ''),  # recursive
    (RecursiveToken(), None, [[{'name': 'one'}, {'name': 'two'}], [{'name': 'three'}, {'name': ['four', 'five']}], [{'name': 'six'}, {'name': ['seven', {'name': 'eight'}, {'name': 'nine'}]}]], [KeyToken('name')], ['one', 'two', 'three', 'four', 'five', 'six', 'seven', 'eight', 'nine', {'name': 'eight'}, {'name': 'nine'}], ''),  # recursive
    (RecursiveToken(), None, None, [], [], ''),  # recursive
    (RecursiveToken(), None, 'string', [], ['string'], ''),  # recursive
    (RecursiveToken(), None, ['string', 'array'], [], [['string', 'array'], 'string', 'array'], ''),  # recursive
    (RecursiveToken(), None, ['string', 'array'], [], [['string', 'array'], 'string', 'array'], ''),  # recursive
    (RecursiveToken(), None, {'this': 'map', 'with': ['array']}, [], [{'this': 'map', 'with': ['array']}, ['array'], 'map', 'array'], ''),  # recursive
    (RootToken(), {'name': 'first'}, None, [], {'name': 'first'}, ''),  # root
    (RootToken(), {'name': 'first'}, None, [KeyToken('name')], 'first', ''),  # root
    (ScriptToken('', ENGINE.compile('')), None, None, [], None, 'invalid expression. is empty'),  # script
    (UnionToken([]), None, [], [], None, 'union: invalid token argument. expected [array slice] got [nil]'),  # union
    (UnionToken([2, 'one']), None, [], [], None, 'union: invalid token argument. expected [int] got [string]'),  # union
    (UnionToken([3.14]), None, [1, 2, 3, 4, 5], [], None, 'union: invalid token argument. expected [int string] got [float64]'),  # union
    (UnionToken([0, 3, 4]), None, ['one', 'two', 'three', 'four'], [], ['one', 'four'], ''),  # union
    (UnionToken([0, 3]), None, ['one', 'two', 'three', 'four'], [], ['one', 'four'], ''),  # union
    (UnionToken([0, 3]), None, ['one', 'two', 'three', 'four'], [IndexToken(-1)], 'four', ''),  # union
    (UnionToken([0, 3]), None, [{'name': 'one'}, {'name': 'two'}, {'name': 'three'}, {'name': 'four'}], [KeyToken('name')], ['one', 'four'], ''),  # union
    (WildcardToken(), None, None, [], None, 'wildcard: invalid token target. expected [array map slice] got [nil]'),  # wildcard
    (WildcardToken(), None, 'not array or map', [], None, 'wildcard: invalid token target. expected [array map slice] got [string]'),  # wildcard
    (WildcardToken(), None, ['one', 'two', 'three'], [], ['one', 'two', 'three'], ''),  # wildcard
    (WildcardToken(), None, ['one', 'two', None], [], ['one', 'two', None], ''),  # wildcard
    (WildcardToken(), None, ['one', 'two', 'three', 4, 5], [], ['one', 'two', 'three', 4, 5], ''),  # wildcard
    (WildcardToken(), None, {'one': 1, 'two': 2, 'three': 3}, [], [Int64(1), Int64(2), Int64(3)], ''),  # wildcard
    (WildcardToken(), None, {'one': '1', 'two': '2', 'three': '3'}, [], ['1', '2', '3'], ''),  # wildcard
    (WildcardToken(), None, {'one': '1', 'two': 2, 'three': '3'}, [], ['1', 2, '3'], ''),  # wildcard
    (WildcardToken(), None, [{'name': 'one'}, {'name': 'two'}, {'name': 'three'}], [], [{'name': 'one'}, {'name': 'two'}, {'name': 'three'}], ''),  # wildcard
    (WildcardToken(), None, [{'name': 'one'}, {'name': 'two'}, {'name': 'three'}], [KeyToken('name')], ['one', 'two', 'three'], ''),  # wildcard
]


# script/standard/engine_test.go Test_ScriptEngine_Evaluate: expression, root, current, expected, error
ENGINE_EVALUATE: list[tuple[Any, ...]] = [
    ('', None, None, None, 'invalid expression. is empty'),
    ('nil', 'root', 'current', None, ''),
    ('null', 'root', 'current', None, ''),
    ('$', 'root', 'current', "'root'", ''),
    ('@', 'root', 'current', "'current'", ''),
    ('other', 'root', 'current', 'other', ''),
    ('1+fish', None, None, None, 'invalid argument. expected number'),
    ('@[-1]==2', None, [0, 2], True, ''),
    ("@.name=~'hello.*'", None, {'name': 'hello world'}, True, ''),
    (".@.name=~'hello.*'", None, {'name': 'hello world'}, False, ''),
    ("@[]=~'hello.*'", None, {'name': 'hello world'}, None, "invalid token. '[]' does not match any token format"),
]


# script/standard/engine_test.go Test_Evaluate: expression, expected (root and current nil)
EVALUATE: list[tuple[Any, ...]] = [
    ('true || false', True),
    ('true && true', True),
    ('false || true && true', True),
    ('true && true || false', True),
    ('true == true', True),
    ("'true' == true", False),
    ("'true' == 'true'", True),
    ('true != true', False),
    ("'true' != true", True),
    ("'true' != 'true'", False),
    ('1 < 2', True),
    ('2 < 2', False),
    ('1 <= 2', True),
    ('2 <= 2', True),
    ('2 > 1', True),
    ('2 > 2', False),
    ('2 >= 1', True),
    ('2 >= 2', True),
    ('1 + 2', 3.0),
    ('2 - 1', 1.0),
    ('1 + 2 - 3', 0.0),
    ('1 * 2', 2.0),
    ('1 / 2', 0.5),
    ('1 * 2 / 8', 0.25),
    ('2 ** 0', 1.0),
    ('2 ** 1', 2.0),
    ('2 ** 2', 4.0),
    ('4 % 2', Int64(0)),
    ('4 % 3', Int64(1)),
    ('15/5*(8-6+3)*5', 75.0),
    ('8+3-3*6+2*(2*3)', 5.0),
    ('!false', True),
    ('!true', False),
    ('!(1==1)', False),
]


# script/standard/engine_test.go Test_ScriptEngine_buildOperators: expression, operators to try, tree, error
BUILD_OPERATORS: list[tuple[Any, ...]] = [
    (' ', ('+',), None, ''),
    ('@.length', ('@',), Sel('@.length'), ''),
    ('1=~\\d', ('=~',), Op('=~', '1', '\\d'), ''),
    ('1||1', ('||',), Op('||', '1', '1'), ''),
    ('1&&1', ('&&',), Op('&&', '1', '1'), ''),
    ('1==1', ('==',), Op('==', '1', '1'), ''),
    ('1!=1', ('!=',), Op('!=', '1', '1'), ''),
    ('1<=1', ('<=',), Op('<=', '1', '1'), ''),
    ('1<1', ('<',), Op('<', '1', '1'), ''),
    ('1>=1', ('>=',), Op('>=', '1', '1'), ''),
    ('1>1', ('>',), Op('>', '1', '1'), ''),
    ('1+1', ('+',), Op('+', '1', '1'), ''),
    ('1-1', ('-',), Op('-', '1', '1'), ''),
    ('1**1', ('**',), Op('**', '1', '1'), ''),
    ('1*1', ('*',), Op('*', '1', '1'), ''),
    ('1/1', ('/',), Op('/', '1', '1'), ''),
    ('1%1', ('%',), Op('%', '1', '1'), ''),
    ('1===1', ('===',), None, 'unsupported operator'),
    ('1+1*1', ('*', '/', '+', '-'), Op('*', Op('+', '1', '1'), '1'), ''),
    ('1+1+1', ('*', '/', '+', '-'), Op('+', '1', Op('+', '1', '1')), ''),
    ('1+1===1', ('+', '==='), None, 'unsupported operator'),
    ('1===1+1', ('+', '==='), None, 'unsupported operator'),
    ('@.a && (@.b || @.c)', OPERATORS, Op('&&', Sel('@.a'), Op('||', Sel('@.b'), Sel('@.c'))), ''),
    ('@[0:1]==[1]', OPERATORS, Op('==', Sel('@[0:1]'), [1.0]), ''),
    ('@.*==[1,2]', OPERATORS, Op('==', Sel('@.*'), [1.0, 2.0]), ''),
    ('@.key<3', OPERATORS, Op('<', Sel('@.key'), '3'), ''),
    ('@.key==true', OPERATORS, Op('==', Sel('@.key'), 'true'), ''),
    ("@.key=~'hello.*'", OPERATORS, Op('=~', Sel('@.key'), "'hello.*'"), ''),
    ('.$', OPERATORS, None, ''),
    ('$[]', OPERATORS, None, "invalid token. '[]' does not match any token format"),
    ('.||', ('||',), None, ''),
    ('||.', ('||',), None, ''),
    ('.||.', ('||',), Op('||', '.', '.'), ''),
    ('||.', ('||', '&&'), None, ''),
    ('!true', OPERATORS, Op('!', 'true'), ''),
    ('!(0==1)', OPERATORS, Op('!', Op('==', '0', '1')), ''),
    ('true!true', OPERATORS, None, ''),
    ('true!true', ('!',), None, ''),
    ('1 in [1]', OPERATORS, Op('in', '1', [1.0]), ''),
    ('1 not in [1]', OPERATORS, Op('not in', '1', [1.0]), ''),
    ('1 in [1] && 1 not in [2]', OPERATORS, Op('&&', Op('in', '1', [1.0]), Op('not in', '1', [2.0])), ''),
]


# script/standard/engine_test.go Test_ScriptEngine_parseArgument: argument, operators, value, error
PARSE_ARGUMENT: list[tuple[Any, ...]] = [
    ('.$', OPERATORS, '.$', ''),
    ('$[]', OPERATORS, None, "invalid token. '[]' does not match any token format"),
    ('1||1', OPERATORS, Op('||', '1', '1'), ''),
    ('[1,2,3]', OPERATORS, [1.0, 2.0, 3.0], ''),
    ('{"key":"value"}', OPERATORS, {'key': 'value'}, ''),
]


# script/standard/{logic,math,complex}_operators_test.go: operator, parameters, expected, error
OPERATOR_CASES: list[tuple[Any, ...]] = [
    (Op('&&', '', 'true'), None, None, 'invalid argument. expected boolean'),  # Test_andOperator
    (Op('&&', 'true', ''), None, None, 'invalid argument. expected boolean'),  # Test_andOperator
    (Op('&&', 'true', 'true'), None, True, ''),  # Test_andOperator
    (Op('&&', 'true', 'false'), None, False, ''),  # Test_andOperator
    (Op('||', '', 'true'), None, None, 'invalid argument. expected boolean'),  # Test_orOperator
    (Op('||', 'true', ''), None, None, 'invalid argument. expected boolean'),  # Test_orOperator
    (Op('||', 'true', 'true'), None, True, ''),  # Test_orOperator
    (Op('||', 'true', 'false'), None, True, ''),  # Test_orOperator
    (Op('||', 'false', 'false'), None, False, ''),  # Test_orOperator
    (Op('<', '', '2'), None, None, 'invalid argument. expected number'),  # Test_lessThanOperator
    (Op('<', '1', ''), None, None, 'invalid argument. expected number'),  # Test_lessThanOperator
    (Op('<', '1', '2'), None, True, ''),  # Test_lessThanOperator
    (Op('<', '2', '2'), None, False, ''),  # Test_lessThanOperator
    (Op('<=', '', '2'), None, None, 'invalid argument. expected number'),  # Test_lessThanOrEqualOperator
    (Op('<=', '1', ''), None, None, 'invalid argument. expected number'),  # Test_lessThanOrEqualOperator
    (Op('<=', '1', '2'), None, True, ''),  # Test_lessThanOrEqualOperator
    (Op('<=', '2', '2'), None, True, ''),  # Test_lessThanOrEqualOperator
    (Op('<=', '2', '1'), None, False, ''),  # Test_lessThanOrEqualOperator
    (Op('>', '', '2'), None, None, 'invalid argument. expected number'),  # Test_greaterThanOperator
    (Op('>', '1', ''), None, None, 'invalid argument. expected number'),  # Test_greaterThanOperator
    (Op('>', '3', '2'), None, True, ''),  # Test_greaterThanOperator
    (Op('>', '2', '2'), None, False, ''),  # Test_greaterThanOperator
    (Op('>=', '', '2'), None, None, 'invalid argument. expected number'),  # Test_greaterThanOrEqualOperator
    (Op('>=', '1', ''), None, None, 'invalid argument. expected number'),  # Test_greaterThanOrEqualOperator
    (Op('>=', '3', '2'), None, True, ''),  # Test_greaterThanOrEqualOperator
    (Op('>=', '2', '2'), None, True, ''),  # Test_greaterThanOrEqualOperator
    (Op('>=', '1', '2'), None, False, ''),  # Test_greaterThanOrEqualOperator
    (Op('==', None, 'value'), None, None, 'invalid argument. is nil'),  # Test_equalsOperator
    (Op('==', 'value', None), None, None, 'invalid argument. is nil'),  # Test_equalsOperator
    (Op('==', 'value', 'value'), None, True, ''),  # Test_equalsOperator
    (Op('==', 'value', 'other'), None, False, ''),  # Test_equalsOperator
    (Op('==', '1', '1.0'), None, True, ''),  # Test_equalsOperator
    (Op('==', 2, '2.0'), None, True, ''),  # Test_equalsOperator
    (Op('==', Sel('@.key'), 'true'), {'@': {'key': True}}, True, ''),  # Test_equalsOperator
    (Op('==', Sel('@.key'), 'true'), {'@': {'key': 'true'}}, False, ''),  # Test_equalsOperator
    (Op('!=', None, 'value'), None, None, 'invalid argument. is nil'),  # Test_notEqualsOperator
    (Op('!=', 'value', None), None, None, 'invalid argument. is nil'),  # Test_notEqualsOperator
    (Op('!=', 'value', 'value'), None, False, ''),  # Test_notEqualsOperator
    (Op('!=', 'value', 'other'), None, True, ''),  # Test_notEqualsOperator
    (Op('!=', '1', '1.0'), None, False, ''),  # Test_notEqualsOperator
    (Op('!=', 2, '2.0'), None, False, ''),  # Test_notEqualsOperator
    (Op('!', None), None, True, ''),  # Test_notOperator
    (Op('!', 'value'), None, None, 'invalid argument. expected boolean'),  # Test_notOperator
    (Op('!', '1'), None, False, ''),  # Test_notOperator
    (Op('!', 2), None, None, 'invalid argument. expected boolean'),  # Test_notOperator
    (Op('!', True), None, False, ''),  # Test_notOperator
    (Op('!', False), None, True, ''),  # Test_notOperator
    (Op('!', Op('==', '1', '1')), None, False, ''),  # Test_notOperator
    (Op('!', Op('==', '2', '1')), None, True, ''),  # Test_notOperator
    (Op('+', '', '2'), None, None, 'invalid argument. expected number'),  # Test_plusOperator
    (Op('+', '1', ''), None, None, 'invalid argument. expected number'),  # Test_plusOperator
    (Op('+', '1', '2'), None, 3.0, ''),  # Test_plusOperator
    (Op('-', '', '2'), None, None, 'invalid argument. expected number'),  # Test_subtractOperator
    (Op('-', '1', ''), None, None, 'invalid argument. expected number'),  # Test_subtractOperator
    (Op('-', '1', '2'), None, -1.0, ''),  # Test_subtractOperator
    (Op('*', '', '2'), None, None, 'invalid argument. expected number'),  # Test_multiplyOperator
    (Op('*', '1', ''), None, None, 'invalid argument. expected number'),  # Test_multiplyOperator
    (Op('*', '2', '2'), None, 4.0, ''),  # Test_multiplyOperator
    (Op('/', '', '2'), None, None, 'invalid argument. expected number'),  # Test_divideOperator
    (Op('/', '1', ''), None, None, 'invalid argument. expected number'),  # Test_divideOperator
    (Op('/', '4', '2'), None, 2.0, ''),  # Test_divideOperator
    (Op('%', '', '2'), None, None, 'invalid argument. expected integer'),  # Test_modulusOperator
    (Op('%', '1', ''), None, None, 'invalid argument. expected integer'),  # Test_modulusOperator
    (Op('%', '3', '2'), None, Int64(1), ''),  # Test_modulusOperator
    (Op('**', '', '2'), None, None, 'invalid argument. expected number'),  # Test_powerOfOperator
    (Op('**', '1', ''), None, None, 'invalid argument. expected number'),  # Test_powerOfOperator
    (Op('**', '3', '2'), None, 9.0, ''),  # Test_powerOfOperator
    (Op('=~', None, ''), None, None, 'invalid argument. is nil'),  # Test_regexOperator
    (Op('=~', '', None), None, None, 'invalid argument. is nil'),  # Test_regexOperator
    (Op('=~', '', ''), None, True, ''),  # Test_regexOperator
    (Op('=~', '1', '\\d'), None, True, ''),  # Test_regexOperator
    (Op('=~', 'string', '\\d'), None, False, ''),  # Test_regexOperator
    (Op('=~', 'string', '\\'), None, None, 'invalid argument. expected a valid regexp'),  # Test_regexOperator
    (Op('=~', "'1'", '"\\d"'), None, True, ''),  # Test_regexOperator
    (Sel('@'), {'@': 'value'}, "'value'", ''),  # Test_selectorOperator
    (Sel('@.key'), {'@': {'key': 'this'}}, "'this'", ''),  # Test_selectorOperator
    (Sel('@.key'), {'@': {'key': True}}, True, ''),  # Test_selectorOperator
    (Sel('@.key'), {'@': {'notkey': True}}, None, "key: invalid token key 'key' not found"),  # Test_selectorOperator
    (Sel('@.key'), {'@': {'key': "'value'"}}, "'value'", ''),  # Test_selectorOperator
    (Op('in', None, None), {}, None, 'invalid argument. is nil'),  # Test_inOperator
    (Op('in', None, ['one']), {}, False, ''),  # Test_inOperator
    (Op('in', 'one', ['one']), {}, True, ''),  # Test_inOperator
    (Op('in', 'one', '["one","two"]'), {}, True, ''),  # Test_inOperator
    (Op('in', 'one', '{"1":"one","2":"two"}'), {}, True, ''),  # Test_inOperator
    (Op('in', '1', '[1,2,3]'), {}, True, ''),  # Test_inOperator
    (Op('in', '1', '["1","2","3"]'), {}, False, ''),  # Test_inOperator
    (Op('in', '2', Sel('@.d')), {'@': {'d': [1.0, 2.0, 3.0]}}, True, ''),  # Test_inOperator
    (Op('not in', None, None), {}, None, 'invalid argument. is nil'),  # Test_notInOperator
    (Op('not in', None, ['one']), {}, True, ''),  # Test_notInOperator
    (Op('not in', 'one', ['one']), {}, False, ''),  # Test_notInOperator
    (Op('not in', 'one', '["one","two"]'), {}, False, ''),  # Test_notInOperator
    (Op('not in', 'one', '{"1":"one","2":"two"}'), {}, False, ''),  # Test_notInOperator
    (Op('not in', '1', '[1,2,3]'), {}, False, ''),  # Test_notInOperator
    (Op('not in', '1', '["1","2","3"]'), {}, True, ''),  # Test_notInOperator
]


# script/standard/operators_test.go Test_get*: reader, argument, parameters, expected, error
READERS: list[tuple[Any, ...]] = [
    ('getInteger', None, None, None, 'invalid argument. is nil'),
    ('getInteger', 3, None, 3, ''),
    ('getInteger', 3.14, None, None, 'invalid argument. expected integer'),
    ('getInteger', '3.14', None, None, 'invalid argument. expected integer'),
    ('getInteger', '3', None, 3, ''),
    ('getInteger', '@', {'@': '10'}, 10, ''),
    ('getInteger', Op('+', 1, 2), None, 3, ''),
    ('getInteger', Op('+', None, 2), None, None, 'invalid argument. is nil'),
    ('getNumber', None, None, None, 'invalid argument. is nil'),
    ('getNumber', 3, None, 3.0, ''),
    ('getNumber', 3.14, None, 3.14, ''),
    ('getNumber', '3.14', None, 3.14, ''),
    ('getNumber', '3', None, 3.0, ''),
    ('getNumber', '@', {'@': '10'}, 10.0, ''),
    ('getNumber', Op('+', 1, 2), None, 3.0, ''),
    ('getNumber', Op('+', None, 2), None, None, 'invalid argument. is nil'),
    ('getNumber', True, None, None, 'invalid argument. expected number'),
    ('getBoolean', None, None, False, ''),
    ('getBoolean', True, None, True, ''),
    ('getBoolean', 'true', None, True, ''),
    ('getBoolean', 'invalid', None, None, 'invalid argument. expected boolean'),
    ('getBoolean', 'invalid', {'invalid': False}, False, ''),
    ('getBoolean', Op('<', None, None), None, None, 'invalid argument. is nil'),
    ('getBoolean', Op('<', 1, 2), None, True, ''),
    ('getBoolean', 'null', {'null': None}, False, ''),
    ('getString', None, None, None, 'invalid argument. is nil'),
    ('getString', "'single quotes'", None, "'single quotes'", ''),
    ('getString', '"double quotes"', None, "'double quotes'", ''),
    ('getString', '@', {'@': 'value'}, "'value'", ''),
    ('getString', '@', None, '@', ''),
    ('getString', Op('<', None, None), None, None, 'invalid argument. is nil'),
    ('getString', Op('<', 1, 2), None, 'true', ''),
    ('getString', '@', {'@': "'value'"}, "'value'", ''),
    ('getString', '@', {'@': '"value"'}, "'value'", ''),
    ('getElements', None, None, None, 'invalid argument. is nil'),
    ('getElements', '[,,]', None, None, 'invalid argument'),
    ('getElements', '["one","two","three"]', None, ['one', 'two', 'three'], ''),
    ('getElements', '{{}', None, None, 'invalid argument'),
    ('getElements', '{"one":"one","two":"two"}', None, ['one', 'two'], ''),
    ('getElements', '@', {'@': ['one', 'two', 'three']}, ['one', 'two', 'three'], ''),
    ('getElements', 'null', {'null': None}, None, 'invalid argument. is nil'),
    ('getElements', 'str', {'str': 'string'}, None, 'invalid argument. expected array, map, or slice'),
    ('getElements', Sel('@.key'), {'@': {'key': ['one']}}, ['one'], ''),
    ('getElements', Op('+', '', ''), {}, None, 'invalid argument. expected number'),
]


# script/standard/helper_test.go Test_findUnquotedOperators: source, operator, index
FIND_OPERATOR: list[tuple[Any, ...]] = [
    ('operator not found', '||', -1),
    ('||', '||', 0),
    ('@.length', '@', 0),
    ("@.email == 'admin@example.com'", '@', 0),
    ("'admin@example.com'", '@', -1),
    ('10<@.price', '@', 3),
    ('|| and ||', '||', 0),
    ("'||' and ||", '||', 9),
    ('"||" and \'||\' and \'"||"\' and "\'||\'"', '||', -1),
    ('[1||1]', '||', -1),
    ('(1||1)||false', '||', 6),
    ("'[]']", ']', 4),
    ('\'[(<"||">)]\'', '||', -1),
]


# --- comparing as the library's tests do ---------------------------------------------------------------------


def _canon(value: Any) -> Any:
    """A value with its Go kind: a bool is not a number, a float64 equals an integer of the same value only
    where testify converts (EqualValues), which `_equal_values` does."""
    if isinstance(value, bool):
        return ("bool", value)
    if isinstance(value, int | float):
        return ("number", float(value), isinstance(value, float))
    if isinstance(value, list):
        return ("list", tuple(_canon(v) for v in value))
    if isinstance(value, dict):
        return ("map", tuple(sorted((k, _canon(v)) for k, v in value.items())))
    if isinstance(value, Selector):
        return ("selector", value.selector)
    if isinstance(value, Operator):
        return (value.name, _canon(value.arg1), _canon(value.arg2))
    return (type(value).__name__, value)


def _elements_match(expected: list[Any], actual: Any) -> bool:
    return isinstance(actual, list) and sorted(map(repr, map(_canon, expected))) == sorted(map(repr, map(_canon, actual)))


def _equal_values(expected: Any, actual: Any) -> bool:
    if isinstance(expected, list):
        return _elements_match(expected, actual)
    numbers = all(isinstance(v, int | float) and not isinstance(v, bool) for v in (expected, actual))
    return bool(expected == actual) if numbers else _canon(expected) == _canon(actual)


def _outcome(run: Any) -> tuple[Any, str]:
    try:
        return run(), ""
    except PathError as err:
        return None, str(err)


def _assert(expected: Any, error: str, got: Any, got_error: str) -> None:
    assert got_error == error
    if not error:
        assert _equal_values(expected, got), f"{got!r} != {expected!r}"


@pytest.mark.parametrize(("selector", "data", "expected", "error"), CONSENSUS)
def test_consensus_tables_give_the_library_results(selector: str, data: str, expected: Any, error: str) -> None:
    _assert(expected, error, *_outcome(lambda: query(selector, unmarshal(data))))


@pytest.mark.parametrize(("selector", "expected"), SPECIFICATION)
def test_specification_examples_select_from_the_store(selector: str, expected: list[Any]) -> None:
    _assert(expected, "", *_outcome(lambda: query(selector, unmarshal(SAMPLE))))


@pytest.mark.parametrize(("selector", "data", "expected", "error"), QUERIES)
def test_queries_give_the_library_results(selector: str, data: str, expected: Any, error: str) -> None:
    _assert(expected, error, *_outcome(lambda: query(selector, unmarshal(data))))


@pytest.mark.parametrize(("selector", "error"), COMPILE_ERRORS)
def test_compile_refuses_as_the_library_does(selector: str, error: str) -> None:
    assert _outcome(lambda: compile_selector(selector)) == (None, error)


@pytest.mark.parametrize(("selector", "expected", "error"), TOKENIZE)
def test_tokenize_splits_as_the_library_does(selector: str, expected: list[str] | None, error: str) -> None:
    assert _outcome(lambda: tokenize(selector)) == (expected, error)


def _describe(token: Token) -> str:
    name = type(token).__name__.removesuffix("Token").lower()
    if isinstance(token, KeyToken):
        return f"key({token.key!r})"
    if isinstance(token, IndexToken):
        return f"index({token.index})"
    if isinstance(token, FilterToken | ScriptToken | ExpressionToken):
        return f"{name}({token.expression!r})"
    if isinstance(token, RangeToken):
        return "range(" + ", ".join(_argument(a) for a in (token.start, token.stop, token.step)) + ")"
    if isinstance(token, UnionToken):
        return "union(" + ", ".join(_argument(a) for a in token.arguments) + ")"
    return name + "()"


def _argument(arg: Any) -> str:
    return _describe(arg) if isinstance(arg, Token) else str(arg) if isinstance(arg, int) else repr(arg)


@pytest.mark.parametrize(("text", "expected", "error"), PARSE)
def test_parse_makes_the_library_tokens(text: str, expected: str | None, error: str) -> None:
    assert _outcome(lambda: _describe(parse(text, ENGINE))) == (expected, error)


@pytest.mark.parametrize(("token", "root", "current", "nxt", "expected", "error"), TOKEN_APPLY)
def test_tokens_apply_as_the_library_does(token: Token, root: Any, current: Any, nxt: list[Token], expected: Any,
                                          error: str) -> None:
    got, got_error = _outcome(lambda: token.apply(root, current, nxt))
    assert got_error == error
    assert got is None if expected is None else _equal_values(expected, got)


@pytest.mark.parametrize(("expression", "root", "current", "expected", "error"), ENGINE_EVALUATE)
def test_script_engine_evaluates_as_the_library_does(expression: str, root: Any, current: Any, expected: Any,
                                                     error: str) -> None:
    _assert(expected, error, *_outcome(lambda: ENGINE.compile(expression).evaluate(root, current)))


@pytest.mark.parametrize(("expression", "expected"), EVALUATE)
def test_script_engine_computes_with_go_types(expression: str, expected: Any) -> None:
    got = ENGINE.compile(expression).evaluate(None, None)
    assert got == expected and type(got) is type(expected)  # testify's Equal: float64(5) is not int64(5)


@pytest.mark.parametrize(("expression", "tokens", "expected", "error"), BUILD_OPERATORS)
def test_script_engine_splits_at_the_lowest_operator(expression: str, tokens: tuple[str, ...], expected: Any,
                                                     error: str) -> None:
    got, got_error = _outcome(lambda: ENGINE._build(expression, tokens))
    assert (_canon(got), got_error) == (_canon(expected), error)


@pytest.mark.parametrize(("argument", "tokens", "expected", "error"), PARSE_ARGUMENT)
def test_script_engine_reads_arguments(argument: str, tokens: tuple[str, ...], expected: Any, error: str) -> None:
    got, got_error = _outcome(lambda: ENGINE._argument(argument, tokens))
    assert (_canon(got), got_error) == (_canon(expected), error)


@pytest.mark.parametrize(("operator", "parameters", "expected", "error"), OPERATOR_CASES)
def test_operators_evaluate_as_the_library_does(operator: Operator, parameters: dict[str, Any] | None,
                                                expected: Any, error: str) -> None:
    got, got_error = _outcome(lambda: operator.evaluate(parameters or {}))
    assert (_canon(got), got_error) == (_canon(expected), error)  # testify's Equal: float64(1) is not int64(1)


READER_FUNCTIONS = {"getInteger": get_integer, "getNumber": get_number, "getBoolean": get_boolean,
                    "getString": get_string, "getElements": get_elements}


@pytest.mark.parametrize(("reader", "argument", "parameters", "expected", "error"), READERS)
def test_operators_read_arguments_as_the_library_does(reader: str, argument: Any, parameters: dict[str, Any] | None,
                                                      expected: Any, error: str) -> None:
    got, got_error = _outcome(lambda: READER_FUNCTIONS[reader](argument, parameters or {}))
    assert got_error == error
    if not error:
        assert _equal_values(expected, got)


@pytest.mark.parametrize(("source", "operator", "index"), FIND_OPERATOR)
def test_operators_are_found_outside_quotes_and_brackets(source: str, operator: str, index: int) -> None:
    assert find_unquoted_operator(source, operator) == index


# --- what the tables leave open: the order of results, Go's values, the corners ---------------------------------

STORE = '{"b": {"id": 2, "tags": ["x"]}, "a": {"id": 1, "tags": ["y", "z"]}, "c": 3}'


@pytest.mark.parametrize(
    ("selector", "expected"),
    [
        ("$.*", [{"id": 1.0, "tags": ["y", "z"]}, {"id": 2.0, "tags": ["x"]}, 3.0]),  # a map's values in key order
        ("$.*.id", [1.0, 2.0]),  # a failing next token drops the element (c has no id)
        ("$..id", [1.0, 2.0]),
        ("$..tags", ["y", "z", "x"]),  # an array found by recursion is spread into the results
        ("$[?(@.id)]", [{"id": 1.0, "tags": ["y", "z"]}, {"id": 2.0, "tags": ["x"]}]),
        ("$['c','b'].id", [2.0]),  # union keys in the order given; c has no id
        ("$['c','b']", [3.0, {"id": 2.0, "tags": ["x"]}]),
        ("$.a.tags[1:]", ["z"]),
        ("$.a.tags[::-1]", ["z", "y"]),
    ],
)
def test_results_come_in_the_library_order(selector: str, expected: list[Any]) -> None:
    assert query(selector, unmarshal(STORE)) == expected


def test_numbers_are_float64_and_lengths_int64() -> None:
    assert json_path('{"a": [1, 2]}', "$.a[1]") == 2.0 and isinstance(json_path('{"a": [1, 2]}', "$.a[1]"), float)
    length = json_path('{"a": [1, 2]}', "$.a.length")
    assert length == 2 and isinstance(length, Int64)
    assert json_path('{"s": "北京"}', "$.s.length") == 6  # a Go string's length is its bytes
    assert json_path('{"length": "own"}', "$.length") == "own"  # a map's own length key wins


def test_filter_truthiness_follows_reflect() -> None:
    data = '[0, -0.0, 1, "", "\'\'", "x", [], [0], {}, null, false, true]'
    assert json_path(data, "$[?(@)]") == [-0.0, 1.0, "x", [0.0], True]  # -0.0 is not all-zero bits; '' is empty


def test_filter_then_index_selects_among_the_matches() -> None:
    assert json_path('[{"a": 1}, {"a": 2}, {"a": 3}]', "$[?(@.a > 1)][0].a") == 2.0


@pytest.mark.parametrize(
    ("expression", "expected", "error"),
    [
        ("1/0", float("inf"), ""), ("-1/0", float("-inf"), ""), ("2**0.5", 2 ** 0.5, ""), ("0**(0-1)", float("inf"), ""),
        ("-7 % 3", -1, ""), ("7 % (0-3)", 1, ""), ("1 in [1, 2]", True, ""), ("@ =~ 'b+'", True, ""),
        # "-" is tried before "%": "7 %" is then text, not a number
        ("7 % -3", None, "invalid argument. expected number"),
        # a quoted string reads as "'a'", never equal to the JSON string "a"; ['a'] is not JSON
        ('"a" in ["a"]', False, ""), ("'a' in ['a']", None, "invalid argument"),
        ("@.x =~ 'b+'", None, "key: invalid token target. expected [map] got [string]"),
    ],
)
def test_script_arithmetic_is_go_arithmetic(expression: str, expected: Any, error: str) -> None:
    assert _outcome(lambda: ENGINE.compile(expression).evaluate(None, "abbc")) == (expected, error)


def test_modulus_by_zero_panics_through_the_filter() -> None:
    """An integer division by zero is a Go panic: no error path of the library catches it, expr-lang's VM does."""
    with pytest.raises(ExprRuntimeError, match="integer divide by zero"):
        json_path('[{"a": 1}]', "$[?(@.a % 0 == 1)]")


def test_an_index_beyond_int64_is_refused() -> None:
    with pytest.raises(Unsupported, match="int64"):
        json_path('{"a": [1]}', "$.a[(1e300)]")


# --- through exprlang, as Argo's examples write it ------------------------------------------------------------------

EMPLOYEES = '{"employees": [{"name": "Baris", "age":43},{"name": "Mo", "age": 42}, {"name": "Jai", "age" :44}]}'
WEATHER = '{"weekWeather": "eyJ0ZW1wcyI6IFszNCwgMjcsIDE1LCA1NywgNDZdfQo="}'
VERBOSE = """map([
        jsonpath(sprig.b64dec(jsonpath(workflow.parameters.weather, '$.weekWeather')), '$.temps')
      ], {
        toJson({
          avg: sprig.add(#[0], #[1], #[2], #[3], #[4]) / 5,
          min: sprig.min(#[0], #[1], #[2], #[3], #[4]),
          max: sprig.max(#[0], #[1], #[2], #[3], #[4])
        })
    })[0]"""


@pytest.mark.parametrize(
    ("expression", "variables", "text"),
    [
        # expression-destructure-json.yaml
        ("jsonpath(workflow.parameters.config, '$.a')", {"workflow.parameters.config": '{"a": "1", "b": "2", "c": "3"}'}, "1"),
        # expression-destructure-json-complex.yaml
        ("jsonpath(workflow.parameters.config, '$.employees[?(@.name==\"Baris\")].age')", {"workflow.parameters.config": EMPLOYEES}, "[43]"),
        ("jsonpath(workflow.parameters.config, '$.employees[?(@.age>42 && @.age<44)].age')", {"workflow.parameters.config": EMPLOYEES}, "[43]"),
        ("jsonpath(workflow.parameters.config, '$.employees[0:1]')", {"workflow.parameters.config": EMPLOYEES}, '[{"age":43,"name":"Baris"}]'),
        ("jsonpath(workflow.parameters.config, '$.employees[*].name')", {"workflow.parameters.config": EMPLOYEES}, '["Baris","Mo","Jai"]'),
        # conditionals.yaml (its when, with -p json=...)
        ("jsonpath(workflow.parameters.json, '$[0].value') == 'true'", {"workflow.parameters.json": '[{"value": "true"}]'}, "true"),
        # expression-reusing-verbose-snippets.yaml
        (VERBOSE, {"workflow.parameters.weather": WEATHER}, '{"avg":35.8,"max":57,"min":15}'),
        ("jsonpath(inputs.parameters['week-temps'], '$.avg')", {"inputs.parameters.week-temps": '{"avg":35.8,"max":57,"min":15}'}, "35.8"),
        ("jsonpath(inputs.parameters['week-temps'], '$.min')", {"inputs.parameters.week-temps": '{"avg":35.8,"max":57,"min":15}'}, "15"),
    ],
)
def test_argo_examples_expressions_give_argo_text(expression: str, variables: dict[str, str], text: str) -> None:
    assert replace_expression(expression, variables) == text


def test_a_failing_query_is_the_expression_runtime_error() -> None:
    program = compile_expr("jsonpath('{\"a\": 1}', '$.b')")
    with pytest.raises(ExprRuntimeError, match="^key: invalid token key 'b' not found$"):
        program.run(argo_env({}))
    with pytest.raises(ExprRuntimeError):
        compile_expr("jsonpath('{', '$')").run(argo_env({}))


def test_a_number_float64_cannot_hold_fails_as_json_unmarshal_does() -> None:
    with pytest.raises(ExprRuntimeError, match=r"^json: cannot unmarshal number 1e400 into Go value of type float64$"):
        json_path('{"s": "1e999", "n": [1, 1e400, 2e400]}', "$.s")


def test_an_unpaired_surrogate_escape_decodes_to_the_replacement_character() -> None:
    assert json_path(r'{"a": "x\ud800y", "b": "\ud83d\ude00"}', "$.*") == ["x\ufffdy", "\U0001f600"]


def test_jsonpath_takes_strings_and_gives_any() -> None:
    with pytest.raises(ExprCompileError, match="cannot use int as argument"):
        compile_expr("jsonpath(1, '$')").run(argo_env({}))
    assert compile_expr("jsonpath('[1, 2]', '$.length') + 1").run(argo_env({})) == 3

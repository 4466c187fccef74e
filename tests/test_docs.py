"""The README's reference tables are the vocabularies the code validates and builds with."""

from mnist_budget import docs
from mnist_budget.nets import LAYER_KINDS, Layer, option_value


def test_readme_tables_are_rendered_from_the_vocabularies():
    text = docs.README.read_text()
    assert {m.group("name") for m in docs.MARKED.finditer(text)} == set(docs.TABLES)
    assert docs.rendered(text) == text, "run `python -m mnist_budget.docs` to rewrite the README's tables"


def test_a_layer_default_is_what_the_builder_uses():
    row = next(line for line in docs.layers_table().splitlines() if line.startswith("| `maxpool`"))
    assert "`k` kernel (2)" in row
    assert LAYER_KINDS["maxpool"].options["k"].default == 2
    assert option_value(Layer("maxpool"), "k") == 2

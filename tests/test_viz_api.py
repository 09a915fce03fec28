"""`momentum_interp.viz` is discoverable: every exported name resolves and says what it draws,
and the module docstring's example runs."""

import doctest

import momentum_interp.viz as viz
from momentum_interp.viz.attention import attention_patterns_html


def test_every_export_resolves_and_has_a_docstring():
    assert viz.__doc__ and "explore" in viz.__doc__
    for name in viz.__all__:
        obj = getattr(viz, name)
        assert obj.__doc__ and obj.__doc__.strip(), name
        assert name in viz.__doc__, f"{name} is not listed in the module docstring"
    assert set(dir(viz)) == set(viz.__all__)


def test_module_docstring_example_runs():
    # The example's values are objects (figures, pages): check that each statement runs.
    examples = doctest.DocTestParser().get_examples(viz.__doc__)
    assert len(examples) >= 6
    namespace = {}
    for example in examples:
        exec(compile(example.source, "viz example", "exec"), namespace)


def test_integer_tokens_stay_apart_in_the_circuitsvis_strip():
    import torch

    html = str(attention_patterns_html(torch.eye(3)[None], ["37", "43", "12"], ["L0H0"]))
    assert '"37 ", "43 ", "12 "' in html or '"37 ","43 ","12 "' in html

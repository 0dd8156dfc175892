"""``mprofxx._spans``, the name this package's docstring gives programs that mark FUNC spans
themselves (``from mprofxx._spans import function_span``): the spans are
:mod:`_memxx_shared.spans`'s, kept importable here for those programs."""

from _memxx_shared.spans import ENV_VAR as ENV_VAR
from _memxx_shared.spans import TimestampProfile as TimestampProfile
from _memxx_shared.spans import enabled as enabled
from _memxx_shared.spans import function_name as function_name
from _memxx_shared.spans import function_span as function_span
from _memxx_shared.spans import span_wrapper as span_wrapper

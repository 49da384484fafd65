"""The dashboard: a Starlette app serving a JSON API and one small page over the store (`taskq dashboard`)."""

from starlette.convertors import IntegerConvertor, register_url_convertor


class TaskIdConvertor(IntegerConvertor):
    """`{task_id:task_id}`: at most 19 digits, as many as 2**63 - 1 has. Starlette's `int` takes any
    number of digits, and past 4,300 Python's int() refuses them with a ValueError: a 500, not a 404."""

    regex = "[0-9]{1,19}"


# Registered here, before the routes of api.py and pages.py are built.
register_url_convertor("task_id", TaskIdConvertor())

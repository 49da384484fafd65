# notes/views.py
from django.db import transaction
from django.http import HttpResponse, JsonResponse
from django.utils.html import format_html
from django.utils.safestring import mark_safe
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from notes.models import Note
from notes.tasks import publish


@csrf_exempt  # a JSON API for the example; keep CSRF on for forms
@require_POST
def create_note(request):
    with transaction.atomic():  # the note and its task commit together, or neither does
        note = Note.objects.create(body=request.POST["body"])
        result = publish.enqueue(note.pk)
        if request.POST.get("fail"):
            raise ValueError("rolled back: no note, no task")
    return JsonResponse({"note": note.pk, "task": result.id}, status=202)


def task_status(request, result_id):
    result = publish.get_result(result_id)
    percent, message = result.task.get_backend().progress(result.id)
    return JsonResponse(
        {
            "status": result.status,
            "progress": percent,
            "message": message,
            "return_value": result.return_value if result.status == "SUCCESSFUL" else None,
            "errors": [error.exception_class_path for error in result.errors],
        }
    )


def task_page(request, result_id):
    """Live progress without JavaScript: the page reloads itself every second until the task finished."""
    result = publish.get_result(result_id)
    percent, message = result.task.get_backend().progress(result.id)
    refresh = "" if result.is_finished else mark_safe('<meta http-equiv="refresh" content="1">')
    return HttpResponse(
        format_html(
            '<!doctype html><title>task {}</title>{}<p>{}</p><progress max="100" value="{}"></progress> {}',
            result.id, refresh, result.status, percent, message or "",
        )
    )

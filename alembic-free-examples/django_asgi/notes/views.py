"""Async views: every query is awaited on vinyl's pool, no thread hops."""

from __future__ import annotations

import json
from typing import Any

from django.http import Http404, HttpRequest, HttpResponse, HttpResponseNotAllowed, JsonResponse

import vinyl
from notes.models import Note, Notebook


def _note(note: Note) -> dict[str, Any]:
    return {
        "id": note.pk,
        "title": note.title,
        "body": note.body,
        # Loaded by select_related("notebook"): read with item access.
        "notebook": note["notebook"].name,
    }


async def notebooks(request: HttpRequest) -> HttpResponse:
    if request.method == "POST":
        data = json.loads(request.body)
        notebook, created = await Notebook.vinyl.get_or_create(name=data["name"])
        return JsonResponse({"id": notebook.pk, "name": notebook.name}, status=201 if created else 200)
    names = await Notebook.vinyl.order_by("name").values("id", "name")
    return JsonResponse({"notebooks": names})


async def notes(request: HttpRequest) -> HttpResponse:
    if request.method == "POST":
        data = json.loads(request.body)
        try:
            notebook = await Notebook.vinyl.get(pk=data["notebook"])
        except Notebook.DoesNotExist:
            raise Http404("no such notebook") from None
        note = await Note.vinyl.create(notebook=notebook, title=data["title"], body=data.get("body", ""))
        note = await Note.vinyl.select_related("notebook").get(pk=note.pk)
        return JsonResponse(_note(note), status=201)
    query = Note.vinyl.select_related("notebook")
    if "q" in request.GET:
        query = query.filter(title__icontains=request.GET["q"])
    return JsonResponse({"notes": [_note(n) for n in await query[:50]]})


async def note_detail(request: HttpRequest, pk: int) -> HttpResponse:
    try:
        note = await Note.vinyl.select_related("notebook").get(pk=pk)
    except Note.DoesNotExist:
        raise Http404("no such note") from None
    if request.method == "DELETE":
        await note.delete()
        return HttpResponse(status=204)
    if request.method == "PATCH":
        data = json.loads(request.body)
        note.title = data.get("title", note.title)
        note.body = data.get("body", note.body)
        await note.save(update_fields=["title", "body"])
    return JsonResponse(_note(note))


async def move_notes(request: HttpRequest, pk: int, target: int) -> HttpResponse:
    """Move every note of a notebook to another and delete it: all or nothing."""
    if request.method != "POST":
        return HttpResponseNotAllowed(["POST"])
    async with vinyl.atomic():
        try:
            source = await Notebook.vinyl.get(pk=pk)
            destination = await Notebook.vinyl.get(pk=target)
        except Notebook.DoesNotExist:
            raise Http404("no such notebook") from None
        moved = await Note.vinyl.filter(notebook=source).update(notebook=destination)
        await source.delete()
    return JsonResponse({"moved": moved})

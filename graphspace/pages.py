"""The GraphSpace pages: a placeholder until the pages are built."""

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.urls import path

from graphspace.models import Graph, Group


@login_required
def home(request: HttpRequest) -> HttpResponse:
    user = request.user
    return render(request, "graphspace/home.html", {
        "graphs": Graph.objects.filter(owner=user).order_by("-updated_at")[:50],
        "groups": Group.objects.filter(groupmember__user=user).order_by("name")[:50],
    })


urlpatterns = [path("", home, name="home")]

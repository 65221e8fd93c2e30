from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from accounts.permissions import viewer_required


@viewer_required
def dashboard(request: HttpRequest) -> HttpResponse:
    return render(request, "audit/dashboard.html")

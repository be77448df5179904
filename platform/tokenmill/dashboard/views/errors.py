from django.shortcuts import render


def not_found(request, exception=None):
    return render(
        request,
        "dashboard/error.html",
        {
            "title": "Not found",
            "message": "This page does not exist, or you do not have access to it.",
        },
        status=404,
    )


def server_error(request):
    return render(
        request,
        "dashboard/error.html",
        {
            "title": "Something went wrong",
            "message": "We could not process this request. Please try again.",
        },
        status=500,
    )

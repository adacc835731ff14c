from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.shortcuts import redirect, render

from webapp.core.errors import ServiceError

from . import selectors, services
from .datasets import dataset_create_from_sample
from .forms import ProjectForm, SampleProjectForm


def home(request):
    return render(request, "home.html")


@login_required
def project_list(request):
    projects = selectors.projects_for_user(request.user)
    return render(request, "projects/project_list.html", {"projects": projects})


def _save_project(request, form, *, project=None):
    try:
        if project is None:
            return services.project_create(owner=request.user, **form.cleaned_data)
        return services.project_update(project=project, **form.cleaned_data)
    except ServiceError as exc:
        form.add_error(exc.field, exc.message)
        return None


@login_required
def project_create(request):
    form = ProjectForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        project = _save_project(request, form)
        if project:
            messages.success(request, f"Project {project.name} created.")
            return redirect("projects:detail", project_id=project.pk)
    return render(request, "projects/project_form.html", {"form": form})


@login_required
def project_edit(request, project_id):
    project = selectors.project_for_user(request.user, project_id)
    form = ProjectForm(request.POST or None, instance=project)
    if request.method == "POST" and form.is_valid():
        if _save_project(request, form, project=project):
            messages.success(request, "Project saved.")
            return redirect("projects:detail", project_id=project.pk)
    return render(request, "projects/project_form.html", {"form": form, "project": project})


@login_required
def project_delete(request, project_id):
    project = selectors.project_for_user(request.user, project_id)
    if request.method == "POST":
        name = project.name
        services.project_delete(project=project)
        messages.success(request, f"Project {name} and everything in it were deleted.")
        return redirect("projects:list")
    return render(request, "projects/project_confirm_delete.html", {"project": project})


@login_required
def project_detail(request, project_id):
    project = selectors.project_for_user(request.user, project_id)
    datasets = project.datasets.prefetch_related("classes")
    return render(request, "projects/project_detail.html", {"project": project, "datasets": datasets})


@login_required
def project_from_sample(request):
    """A new project whose first dataset is a Keras sample, loaded and ingested by a worker."""
    form = SampleProjectForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        from django.db import transaction

        from workers.ml.samples import SAMPLES

        data = form.cleaned_data
        per_class = None if data["per_class"] == "all" else int(data["per_class"])
        name = data["name"].strip() or f"{SAMPLES[data['sample']].label} sample"
        try:
            with transaction.atomic():
                project = services.project_create(owner=request.user, name=name, description="")
                dataset = dataset_create_from_sample(
                    project=project, user=request.user, sample=data["sample"], per_class=per_class
                )
        except ServiceError as exc:
            form.add_error(exc.field if exc.field in form.fields else None, exc.message)
        else:
            messages.success(request, f"Project {project.name} created; a worker is loading {dataset.original_name}.")
            return redirect("projects:dataset_detail", dataset_id=dataset.pk)
    return render(request, "projects/project_from_sample.html", {"form": form})

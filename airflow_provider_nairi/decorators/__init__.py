"""TaskFlow decorators (registered under ``task-decorators``): ``@task.nairi``, ``@task.nairi_branch``."""

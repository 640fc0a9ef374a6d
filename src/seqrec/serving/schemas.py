"""Request and response bodies of the HTTP app: pydantic models that FastAPI validates (422 naming the field)
and documents at /docs."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictFloat, StrictInt, StrictStr, model_validator

MAX_IDS = 10_000  # items in one session, allow or deny list
MAX_STEERING_KEYS = 16

Id = Annotated[str, Field(min_length=1, max_length=256)]
IdList = Annotated[list[Id], Field(max_length=MAX_IDS)]
SteeringValue = StrictInt | StrictFloat | StrictBool | StrictStr | None


class Body(BaseModel):
    """Request bodies: unknown fields are refused; numeric ids (`42`) read as the id `"42"`."""

    model_config = ConfigDict(extra="forbid", coerce_numbers_to_str=True)


class RecommendRequest(Body):
    """Top-k items for a known user (`user`) or for a session of items (`items`); exactly one of the two."""

    user: Id | None = Field(None, description="A user id of the run's data.", examples=["42"])
    items: Annotated[list[Id], Field(min_length=1, max_length=MAX_IDS)] | None = Field(
        None, description="A session: item ids, oldest first. Unknown ids are skipped and listed in unknown_items.")
    k: StrictInt = Field(10, ge=1, description="List length (at most the catalogue size).")
    mask_seen: StrictBool | None = Field(
        None, description="Leave out items the user or session has seen (default: the run's protocol).")
    allow: IdList | None = Field(None, description="Recommend only these items.")
    deny: IdList | None = Field(None, description="Never recommend these items.")
    steering: Annotated[dict[str, SteeringValue], Field(max_length=MAX_STEERING_KEYS)] | None = Field(
        None, description='Steering parameters, e.g. {"alpha": 1.5, "neurons": 64} or {"target": "Comedy"}; '
                          '"name" picks the steering when the run offers several (see /metadata).',
        examples=[{"alpha": 1.5}])

    @model_validator(mode="after")
    def one_input(self) -> RecommendRequest:
        if (self.user is None) == (self.items is None):
            raise ValueError("give either `user` (a user id) or `items` (a session of item ids), not both or none")
        return self


class SimilarRequest(Body):
    """Items whose embeddings are closest to `item`'s."""

    item: Id = Field(description="An item id of the run's catalogue.", examples=["1"])
    k: StrictInt = Field(10, ge=1, description="List length (at most the catalogue size minus one).")
    allow: IdList | None = Field(None, description="Return only these items.")
    deny: IdList | None = Field(None, description="Never return these items.")


class Recommended(BaseModel):
    """One recommended item."""

    rank: int
    item: str
    score: float
    title: str


class RecommendResponse(BaseModel):
    user: str | None = Field(description="The user asked about (null for a session).")
    recommendations: list[Recommended]
    unknown_items: list[str] | None = Field(description="Session items the run does not know (null for a user).")
    steering: dict[str, Any] | None = Field(description="The steering applied, with every parameter (null: none).")
    k: int
    mask_seen: bool


class SimilarResponse(BaseModel):
    item: str
    similar: list[Recommended]


class ItemResponse(BaseModel):
    item: str
    title: str
    attributes: dict[str, list[str]]


class HealthResponse(BaseModel):
    status: str
    run: str


class MetadataResponse(BaseModel):
    run: str = Field(description="The served run's folder name.")
    kind: str = Field(description="Its run kind (base, sae, steered, ...).")
    model: dict[str, Any] = Field(description="The model's config.")
    data: dict[str, Any] = Field(description="The data source the model was trained on.")
    protocol: dict[str, Any] = Field(description="How the test metrics were measured.")
    test_metrics: dict[str, Any]
    users: int
    items: int
    mask_seen: bool = Field(description="The default of `mask_seen` (the run's protocol).")
    steering: dict[str, dict[str, Any]] = Field(
        description="Steering on offer: name -> parameter -> {type, min, max, default}.")
    batching: bool = Field(description="Whether concurrent requests are scored together.")


class ErrorResponse(BaseModel):
    """The body of every 4xx/5xx answer that is not a validation error of the request's shape."""

    detail: str = Field(description="What went wrong and what to do.")
    field: str | None = Field(None, description="The request field at fault.")
    id: str | None = Field(None, description="The unknown id (404).")

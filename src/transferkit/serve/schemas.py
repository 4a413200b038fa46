"""The server's answers as pydantic models: what each endpoint returns, documented on the OpenAPI page.

(No `from __future__ import annotations`: pydantic reads these annotations at runtime.)"""

from typing import Any, Optional

from pydantic import BaseModel, Field


class ClassProbability(BaseModel):
    class_: str = Field(alias="class", description="a class name of the run")
    probability: float

    model_config = {"populate_by_name": True}


class Prediction(BaseModel):
    file: Optional[str] = Field(description="the uploaded file's name")
    probabilities: dict[str, float] = Field(description="every class's probability, in the run's class order")
    top: list[ClassProbability] = Field(description="the most probable classes, most probable first")


class PredictAnswer(BaseModel):
    model: str
    transferkit_version: str
    predictions: list[Prediction] = Field(description="one per uploaded file, in upload order")


class GradcamAnswer(BaseModel):
    file: Optional[str]
    class_: str = Field(alias="class", description="the class the heat map explains")
    overlay: str = Field(description="the image with the heat map blended on top, as a PNG data URL")

    model_config = {"populate_by_name": True}


class EmbedAnswer(BaseModel):
    file: Optional[str]
    layer: str
    dim: int
    vector: list[float] = Field(description="the feature vector, extracted as the feature set's were")
    transferkit_version: str


class Neighbour(BaseModel):
    rank: int
    path: str = Field(description="the image's path in the feature set")
    similarity: float = Field(description="cosine similarity to the upload")
    image: str = Field(description="where the server shows the image: /image/{row}")


class SimilarAnswer(BaseModel):
    file: Optional[str]
    neighbours: list[Neighbour]
    transferkit_version: str


class ClassifierInfo(BaseModel):
    model: str
    classes: list[str]
    input: dict[str, Any] = Field(description="how an upload becomes the model's input (InputConfig)")
    transferkit_version: str


class HealthAnswer(BaseModel):
    status: str
    transferkit_version: str
    classifier: Optional[ClassifierInfo]
    features: Optional[int] = Field(description="images in the served feature set")
    batches: dict[str, int] = Field(description="model batches run so far, per endpoint kind")


class ErrorAnswer(BaseModel):
    error: str = Field(description="one line: what was wrong with the request and how to fix it")


ERRORS = {status: {"model": ErrorAnswer} for status in (400, 404, 408, 413, 415, 422, 503)}

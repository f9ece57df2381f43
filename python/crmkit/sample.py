"""A realistic, messy customer base with ground truth, for quickstarts, tests and benches.

:func:`generate` writes a CRM export (``contacts.csv``), the ground truth of which
rows are the same person (``truth.csv``), the companies the contacts work for
(``companies.csv``) and a timeline of interactions (``interactions.jsonl``)::

    from pathlib import Path
    from crmkit.sample import generate

    info = generate(Path("data"), contacts=3000, seed=42)
    print(info.contacts, info.entities, info.duplicate_rows, info.interactions)

:func:`iter_contacts` and :func:`generate_contacts_rows` stream contact rows
without touching the disk, for benches that need millions of rows.

What the data looks like:

- **People.** Names are drawn by frequency from embedded tables (US, British,
  German, French and Canadian populations) with a long tail of synthetic
  surnames, so common names such as "John Smith" belong to many *different*
  people and exact-name matching is not enough. Countries are mostly the US,
  with some GB, CA, DE and FR, each with its own street, postcode, state and
  phone formats. Emails are derived from the names at the providers of each
  country or at the domain of the contact's company.
- **Duplicates.** About ``duplicate_rate`` of the rows are extra records of a
  person who already has a row, written the way people and systems write them:
  typos (insert, delete, substitute, transpose on a QWERTY keyboard), nicknames
  (William/Bill, Elizabeth/Liz, …), initials, swapped first and last names,
  surname changes, missing fields (each record comes from a source profile: CRM,
  web form, event scan, store, bulk import), moved addresses, email variants
  (case, dots, ``+tags``, a typo in the domain, a new address), phone formats
  and digit typos, day/month swaps in birth dates, accents dropped, whitespace
  and ALL CAPS. A person has 1 to 4 records, most often 2. Duplicates appear
  later in the file than the person's first record, scattered over up to
  100,000 rows.
- **Behaviour.** Interactions cover ``years`` before ``as_of``: a Pareto of
  buyers (many one-time buyers, a few heavy repeat buyers), churned customers
  who fell silent months ago, leads who never bought, newsletter opens and
  clicks on a campaign calendar, sales calls and meetings for business
  contacts, support tickets and satisfaction scores.

Everything is deterministic: the same arguments give byte-identical files on the
same Python version. Contacts, companies and interactions draw from separate
random streams, so ``contacts.csv`` does not depend on ``with_interactions`` or
``with_companies``.
"""

from __future__ import annotations

import bisect
import csv
import functools
import heapq
import math
import random
import time
import zlib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Generic, NamedTuple, TypeVar

import msgspec

__all__ = [
    "COMPANY_HEADER",
    "CONTACT_HEADER",
    "DEFAULT_AS_OF",
    "INTERACTION_KINDS",
    "MAX_COMPANIES",
    "MAX_DUPLICATE_RATE",
    "TRUTH_HEADER",
    "SampleInfo",
    "company_count",
    "generate",
    "generate_contacts_rows",
    "iter_contacts",
]

CONTACT_HEADER: tuple[str, ...] = (
    "Record ID",
    "First Name",
    "Last Name",
    "Email",
    "Phone",
    "Company",
    "Job Title",
    "Street",
    "City",
    "State",
    "Postcode",
    "Country",
    "Birth Date",
    "Signed Up",
    "Tags",
    "Plan",
    "Newsletter",
)
"""The header of ``contacts.csv``, in the human style of a CRM export."""

TRUTH_HEADER: tuple[str, ...] = ("Record ID", "Entity ID")
"""The header of ``truth.csv``: which person (entity) each contact row belongs to."""

COMPANY_HEADER: tuple[str, ...] = ("Name", "Domain", "Industry", "Employees", "Country")
"""The header of ``companies.csv``."""

INTERACTION_KINDS: tuple[str, ...] = (
    "purchase",
    "email_open",
    "email_click",
    "call",
    "meeting",
    "ticket",
    "feedback",
    "form",
)
"""The kinds of interaction written to ``interactions.jsonl``."""

DEFAULT_AS_OF = datetime(2025, 6, 30, 12, 0, 0, tzinfo=UTC)
"""The reference time used when ``as_of`` is not given (fixed, so runs are reproducible)."""

MAX_DUPLICATE_RATE = 0.5
"""The largest ``duplicate_rate`` accepted by the generators."""

_DUP_WINDOW = 100_000
"""Duplicates of a person appear at most this many rows after the person's first row."""

T = TypeVar("T")


# ---------------------------------------------------------------------------
# Embedded tables. Weights are rough relative frequencies.
# ---------------------------------------------------------------------------


def _table(text: str) -> list[tuple[str, float]]:
    """Parse ``"Name:weight Name:weight ..."`` (``_`` stands for a space in a name)."""
    out: list[tuple[str, float]] = []
    for token in text.split():
        name, _, weight = token.rpartition(":")
        out.append((name.replace("_", " "), float(weight)))
    return out


_US_MALE = _table(
    """
    James:330 John:320 Robert:310 Michael:300 David:260 William:240 Richard:140 Joseph:130
    Thomas:120 Christopher:110 Charles:110 Daniel:110 Matthew:90 Anthony:70 Mark:70 Donald:65
    Steven:65 Paul:60 Andrew:60 Joshua:60 Kenneth:55 Kevin:55 Brian:55 George:50 Timothy:45
    Ronald:45 Edward:40 Jason:45 Jeffrey:40 Ryan:40 Jacob:40 Gary:38 Nicholas:38 Eric:36
    Jonathan:35 Stephen:33 Larry:30 Justin:30 Scott:30 Brandon:28 Benjamin:28 Samuel:27
    Gregory:26 Alexander:25 Frank:25 Patrick:24 Raymond:24 Jack:23 Dennis:22 Jerry:22 Tyler:21
    Aaron:20 Jose:20 Adam:19 Nathan:18 Henry:18 Douglas:17 Zachary:17 Peter:17 Kyle:16 Ethan:16
    Walter:15 Noah:15 Jeremy:15 Christian:14 Keith:14 Roger:14 Terry:13 Gerald:13 Harold:13
    Sean:13 Austin:13 Carl:12 Arthur:12 Lawrence:12 Dylan:12 Jesse:11 Jordan:11 Bryan:11
    Billy:6 Joe:6 Bruce:10 Gabriel:10 Logan:10 Albert:10 Willie:8 Alan:10 Juan:10 Wayne:9
    Elijah:9 Randy:9 Roy:9 Vincent:9 Ralph:9 Eugene:9 Russell:8 Bobby:5 Mason:8 Philip:8
    Phillip:5 Louis:8 Carlos:8 Luis:7 Liam:7 Lucas:6 Miguel:6 Victor:6 Martin:6 Johnny:5
    Stanley:6 Shawn:6 Travis:6 Marcus:5 Derek:5 Chad:5 Luke:5 Dustin:5 Evan:5 Ian:5 Caleb:5
    Hunter:5 Connor:5 Owen:5 Leonard:4 Francis:4 Frederick:4 Antonio:4 Jesus:4 Mohammed:4
    Ahmed:3 Wei:3 Raj:3 Omar:3 Andre:3 Jamal:3 Trevor:3 Cody:4 Spencer:3 Colin:3 Grant:3 Max:3
    Oliver:4 Leo:3 Isaac:4 Julian:3 Xavier:3 Dominic:3 Diego:3 Alejandro:3 Rafael:2 Pedro:2
    Manuel:3 Jorge:3 Ricardo:3 Fernando:2 Eduardo:2 Sanjay:2 Arjun:2 Tuan:2 Minh:2 Jin:2
    Hiroshi:1 Vijay:2 Darnell:2 Malik:2 Franklin:2 Edwin:3 Nathaniel:3 Theodore:3 Mitchell:3
    Curtis:3 Glenn:3 Marvin:3 Howard:4 Allen:4 Clarence:3 Jimmy:3 Craig:5 Todd:5 Shane:3
    """
)
_US_FEMALE = _table(
    """
    Mary:260 Patricia:120 Jennifer:200 Linda:140 Elizabeth:120 Barbara:110 Susan:110
    Jessica:100 Sarah:100 Karen:100 Lisa:95 Nancy:85 Betty:40 Margaret:70 Sandra:70 Ashley:75
    Kimberly:70 Emily:65 Donna:60 Michelle:65 Carol:55 Amanda:60 Dorothy:45 Melissa:60
    Deborah:55 Stephanie:55 Rebecca:50 Sharon:45 Laura:50 Cynthia:45 Kathleen:40 Amy:45
    Angela:45 Shirley:35 Anna:35 Brenda:35 Pamela:35 Emma:35 Nicole:40 Helen:30 Samantha:35
    Katherine:35 Christine:30 Debra:30 Rachel:30 Carolyn:25 Janet:25 Catherine:25 Maria:35
    Heather:30 Diane:25 Ruth:20 Julie:25 Olivia:25 Joyce:18 Virginia:18 Victoria:20 Kelly:22
    Lauren:22 Christina:20 Joan:18 Evelyn:15 Judith:17 Megan:20 Andrea:18 Cheryl:16 Hannah:18
    Jacqueline:15 Martha:14 Gloria:12 Teresa:14 Ann:14 Sara:14 Madison:14 Frances:11 Kathryn:12
    Janice:11 Jean:11 Abigail:12 Alice:10 Judy:6 Sophia:12 Grace:11 Denise:11 Amber:12 Doris:8
    Marilyn:8 Danielle:12 Beverly:8 Isabella:10 Theresa:9 Diana:9 Natalie:10 Brittany:11
    Charlotte:8 Marie:9 Kayla:9 Alexis:8 Lori:8 Tiffany:8 Tracy:7 Erin:9 Allison:8 Jasmine:7
    Alexandra:6 Valerie:6 Chloe:6 Vanessa:6 Caroline:6 Ava:7 Mia:6 Zoe:4 Chelsea:5 Julia:7
    Gabrielle:4 Jenna:5 Holly:6 Monica:6 Erica:6 Veronica:4 Rose:4 Claire:4 Eleanor:3 Lucy:4
    Ella:4 Leah:5 Ana:5 Carmen:5 Rosa:4 Guadalupe:3 Sofia:4 Priya:3 Mei:2 Yuki:2 Aisha:3
    Fatima:3 Linh:2 Wendy:5 Tina:3 Dawn:5 Stacy:5 Crystal:6 Paula:5 Robin:5 Peggy:3 Molly:3
    Jill:3 Kristen:6 Courtney:6 Morgan:5 Kaitlyn:4 Paige:3 Haley:4 Brooke:4 Sydney:3 Audrey:4
    Natasha:3 Naomi:3 Maya:4 Elena:4 Yvonne:3 Lillian:3 Cassandra:3 Sally:3 Josephine:3
    Madeline:3 Gabriela:3 Jocelyn:2 Lucia:2 Bethany:3 Renee:4 Tamara:3 Sylvia:3 Irene:3
    """
)
_US_SURNAMES = _table(
    """
    Smith:828 Johnson:655 Williams:550 Brown:487 Jones:483 Garcia:400 Miller:381 Davis:380
    Rodriguez:375 Martinez:359 Hernandez:352 Lopez:297 Gonzalez:290 Wilson:270 Anderson:262
    Thomas:257 Taylor:254 Moore:242 Jackson:240 Martin:238 Lee:232 Perez:222 Thompson:222
    White:219 Harris:207 Sanchez:206 Clark:182 Ramirez:181 Lewis:177 Robinson:176 Walker:173
    Young:161 Allen:160 King:157 Wright:155 Scott:145 Torres:142 Nguyen:142 Hill:141 Flores:140
    Green:139 Adams:138 Nelson:137 Baker:136 Hall:134 Rivera:133 Campbell:126 Mitchell:125
    Carter:124 Roberts:124 Gomez:115 Phillips:113 Evans:112 Turner:111 Diaz:110 Parker:109
    Cruz:108 Edwards:108 Collins:106 Reyes:105 Stewart:103 Morris:102 Morales:100 Murphy:99
    Cook:99 Rogers:98 Gutierrez:95 Ortiz:94 Morgan:94 Cooper:94 Peterson:93 Bailey:93 Reed:92
    Kelly:91 Howard:91 Ramos:90 Kim:90 Cox:89 Ward:89 Richardson:88 Watson:87 Brooks:86
    Chavez:86 Wood:85 James:85 Bennett:84 Gray:84 Mendoza:83 Ruiz:82 Hughes:82 Price:81
    Alvarez:81 Castillo:80 Sanders:80 Patel:79 Myers:79 Long:78 Ross:78 Foster:78 Jimenez:77
    Powell:75 Jenkins:75 Perry:74 Russell:74 Sullivan:74 Bell:74 Coleman:73 Butler:73
    Henderson:73 Barnes:72 Gonzales:72 Fisher:71 Vasquez:70 Simmons:69 Romero:69 Jordan:68
    Patterson:68 Alexander:67 Hamilton:66 Graham:66 Reynolds:66 Griffin:65 Wallace:65
    Moreno:65 West:64 Cole:64 Hayes:64 Bryant:63 Herrera:63 Gibson:62 Ellis:62 Tran:62
    Medina:61 Aguilar:60 Stevens:60 Murray:60 Ford:59 Castro:59 Marshall:59 Owens:59
    Harrison:58 Fernandez:58 McDonald:58 Woods:58 Washington:58 Kennedy:56 Wells:56 Vargas:56
    Henry:56 Chen:56 Freeman:55 Webb:55 Tucker:55 Guzman:55 Burns:55 Crawford:55 Olson:54
    Simpson:54 Porter:54 Hunter:54 Gordon:54 Mendez:53 Silva:53 Shaw:53 Snyder:53 Mason:53
    Dixon:52 Munoz:52 Hunt:52 Hicks:52 Holmes:51 Palmer:51 Wagner:51 Black:51 Robertson:50
    Boyd:50 Rose:50 Stone:50 Salazar:50 Fox:49 Warren:49 Mills:49 Meyer:49 Rice:48 Schmidt:48
    Garza:48 Daniels:48 Ferguson:47 Nichols:47 Stephens:47 Soto:47 Weaver:46 Ryan:46
    Gardner:46 Payne:46 Grant:46 Dunn:45 Kelley:45 Spencer:45 Hawkins:45 Arnold:44 Pierce:44
    Vazquez:44 Hansen:44 Peters:44 Santos:44 Hart:43 Bradley:43 Knight:43 Elliott:43
    Cunningham:43 Duncan:43 Armstrong:42 Hudson:42 Carroll:42 Lane:42 Riley:42 Andrews:42
    Alvarado:42 Ray:41 Delgado:41 Berry:41 Perkins:41 Hoffman:41 Johnston:41 Matthews:40
    Pena:40 Richards:40 Contreras:40 Willis:40 Carpenter:40 Lawrence:40 Sandoval:40
    Guerrero:39 George:39 Chapman:39 Rios:39 Estrada:39 Ortega:39 Watkins:39 Greene:39
    Nunez:38 Wheeler:38 Valdez:38 Harper:38 Burke:38 Larson:38 Santiago:38 Maldonado:38
    Morrison:38 Franklin:37 Carlson:37 Austin:37 Dominguez:37 Carr:37 Lawson:37 Jacobs:37
    O'Brien:30 Lynch:36 Singh:36 Vega:36 Bishop:36 Montgomery:36 Oliver:36 Jensen:35
    Harvey:35 Williamson:35 Gilbert:35 Dean:35 Sims:35 Espinoza:35 Howell:35 Li:35 Wong:35
    Reid:34 Hanson:34 Le:34 McCoy:34 Garrett:34 Burton:34 Fuller:34 Wang:34 Weber:33 Welch:33
    Rojas:33 Lucas:33 Marquez:33 Fields:33 Park:33 Yang:33 Little:33 Banks:33 Padilla:33
    Day:33 Walsh:32 Bowman:32 Schultz:32 Luna:32 Fowler:32 Mejia:32 Davidson:32 Acosta:32
    Brewer:32 May:32 Holland:32 Juarez:32 Newman:31 Pearson:31 Curtis:31 Cortez:31
    Douglas:31 Schneider:31 Joseph:31 Barrett:31 Navarro:31 Figueroa:31 Keller:31 Avila:31
    Wade:30 Molina:30 Stanley:30 Hopkins:30 Campos:30 Barnett:30 Bates:30 Chambers:30
    Caldwell:30 Beck:30 Lambert:30 Miranda:30 Byrd:30 Craig:30 Ayala:30 Lowe:29 Frazier:29
    Powers:29 Neal:29 Leonard:29 Gregory:29 Carrillo:29 Sutton:29 Fleming:29 Rhodes:29
    Shelton:29 Schwartz:29 Norris:29 Jennings:29 Watts:29 Duran:29 Walters:29 Cohen:29
    McDaniel:28 Moran:28 Parks:28 Steele:28 Vaughn:28 Becker:28 Holt:28 DeLeon:28 Barker:28
    Terry:28 Hale:28 Leon:28 O'Connor:15 McCarthy:15 O'Neill:12 MacDonald:10 Zhang:20
    Liu:18 Huang:10 Shah:12 Khan:12 Ali:14 Cho:8 Choi:9 Yamamoto:5 Tanaka:5 Goldberg:8
    """
)
_GB_SURNAMES = _table(
    """
    Smith:1100 Jones:760 Williams:560 Taylor:510 Brown:500 Davies:490 Evans:340 Wilson:330
    Thomas:320 Johnson:300 Roberts:300 Robinson:260 Thompson:250 Wright:250 Walker:240
    White:230 Edwards:220 Hughes:220 Green:210 Hall:210 Lewis:200 Harris:200 Clarke:200
    Patel:200 Jackson:190 Wood:180 Turner:170 Martin:170 Cooper:160 Hill:160 Ward:160
    Morris:160 Moore:150 Clark:150 Lee:150 King:150 Baker:150 Harrison:140 Morgan:140
    Allen:140 James:140 Scott:130 Phillips:130 Watson:130 Davis:130 Parker:120 Price:120
    Bennett:120 Young:120 Griffiths:110 Mitchell:110 Kelly:110 Cook:110 Carter:110
    Richardson:100 Bailey:100 Collins:100 Bell:100 Shaw:100 Murphy:100 Miller:100 Cox:90
    Richards:90 Khan:90 Marshall:90 Anderson:90 Simpson:90 Ellis:90 Adams:90 Singh:80
    Begum:80 Wilkinson:80 Foster:80 Chapman:80 Powell:80 Webb:80 Rogers:80 Gray:80 Mason:80
    Ali:80 Hunt:80 Hussain:70 Campbell:70 Matthews:70 Owen:70 Palmer:70 Holmes:70 Mills:70
    Barnes:70 Knight:70 Lloyd:70 Butler:70 Russell:70 Barker:70 Fisher:70 Stevens:70
    Jenkins:70 Murray:70 Dixon:70 Harvey:70 Graham:60 Pearson:60 Ahmed:60 Fletcher:60
    Walsh:60 Kaur:60 Gibson:60 Howard:60 Andrews:60 Stewart:60 Elliott:60 Reynolds:60
    Saunders:60 Payne:60 Fox:60 Ford:60 Pearce:60 Day:60 Brooks:60 West:60 Lawrence:60
    Cole:60 Atkinson:60 Bradley:60 Spencer:60 Gill:50 Dawson:50 Ball:50 Burton:50 O'Brien:50
    Watts:50 Rose:50 Booth:50 Perry:50 Ryan:50 Grant:50 Wells:50 Armstrong:50 Francis:50
    Rees:50 Hayes:50 Hart:50 Hudson:50 Newman:50 Barrett:50 Webster:50 Hunter:50 Gregory:50
    Carr:50 Lowe:50 Page:50 Marsh:50 Riley:50 Dunn:50 Woods:50 Parsons:50 Berry:50 Stone:50
    Reid:50 Holland:50 Hawkins:50 Harding:40 Porter:40 Robertson:40 Newton:40 Oliver:40
    Reed:40 Kennedy:40 Williamson:40 Bird:40 Gardner:40 Shah:40 Dean:40 Lane:40 Cooke:40
    Bates:40 Henderson:40 Parry:40 Burgess:40 Bishop:40 Walton:40 Burns:40 Nicholson:40
    Shepherd:40 Ross:40 Cross:40 Long:40 Freeman:40 Warren:40 Nicholls:40 Hamilton:40
    Byrne:40 Sutton:40 McDonald:40 Yates:40 Hodgson:40 Robson:40 Curtis:40 Hopkins:40
    O'Connor:40 Harper:40 Coleman:40 Watkins:40 Moss:40 McCarthy:40 Chambers:40 O'Neill:40
    Griffin:40 Sharp:40 Hardy:40 Wheeler:40 Potter:40 Osborne:40 Johnston:40 Gordon:40
    Doyle:40 Wallace:40 George:40 Jordan:40 Hutchinson:40 Rowe:40 Burke:40 May:40 Pritchard:40
    """
)
_DE_MALE = _table(
    """
    Peter:110 Michael:120 Thomas:115 Andreas:110 Wolfgang:90 Klaus:80 Jürgen:80 Stefan:95
    Christian:90 Uwe:60 Werner:55 Hans:60 Frank:70 Bernd:50 Dieter:45 Horst:40 Manfred:45
    Markus:70 Matthias:65 Martin:70 Helmut:40 Sebastian:60 Tobias:50 Daniel:60 Alexander:60
    Jan:55 Florian:45 Lukas:45 Felix:40 Maximilian:45 Jonas:40 Leon:35 Paul:40 Tim:35
    Dirk:35 Sven:35 Jens:35 Holger:30 Ralf:35 Oliver:40 Torsten:30 Günter:30 Heinz:30
    Karl:30 Friedrich:20 Johannes:35 Philipp:35 Niklas:30 Moritz:25 Jörg:30 Rainer:30
    Hartmut:15 Fabian:25 David:25 Benjamin:20 Simon:25 Kevin:20 Dennis:20 Marcel:25
    """
)
_DE_FEMALE = _table(
    """
    Sabine:90 Susanne:85 Petra:80 Andrea:85 Claudia:80 Monika:70 Ursula:60 Birgit:60
    Stefanie:65 Julia:70 Katharina:60 Anna:65 Laura:50 Lena:45 Sarah:50 Lisa:50 Christina:50
    Nicole:55 Sandra:60 Melanie:50 Anja:50 Karin:55 Renate:45 Gabriele:50 Heike:50 Martina:55
    Elisabeth:40 Ingrid:35 Brigitte:40 Helga:35 Maria:45 Angelika:35 Kerstin:40 Silke:35
    Tanja:40 Jana:35 Franziska:35 Johanna:30 Sophie:30 Marie:35 Hannah:30 Lea:30 Leonie:25
    Jessica:25 Jennifer:25 Vanessa:20 Christiane:30 Ute:30 Doris:20 Jutta:25 Simone:35
    Katrin:35 Daniela:35 Nadine:30 Miriam:20 Carina:15 Theresa:15 Eva:30 Charlotte:15
    """
)
_DE_SURNAMES = _table(
    """
    Müller:950 Schmidt:620 Schneider:360 Fischer:320 Weber:290 Meyer:280 Wagner:260
    Becker:240 Schulz:240 Hoffmann:230 Schäfer:180 Koch:170 Bauer:170 Richter:170 Klein:170
    Wolf:160 Schröder:150 Neumann:150 Schwarz:140 Zimmermann:140 Braun:130 Krüger:130
    Hofmann:130 Hartmann:130 Lange:120 Schmitt:120 Werner:120 Schmitz:120 Krause:120
    Meier:120 Lehmann:110 Schmid:110 Schulze:110 Maier:100 Köhler:100 Herrmann:100
    König:95 Walter:95 Mayer:95 Huber:95 Kaiser:90 Fuchs:90 Peters:90 Lang:85 Scholz:85
    Möller:85 Weiß:85 Jung:85 Hahn:80 Schubert:80 Vogel:80 Friedrich:80 Keller:80 Günther:80
    Frank:80 Berger:75 Winkler:75 Roth:75 Beck:75 Lorenz:75 Baumann:70 Franke:70 Albrecht:70
    Schuster:70 Simon:70 Ludwig:70 Böhm:70 Winter:70 Kraus:65 Martin:65 Schumacher:65
    Krämer:65 Vogt:65 Stein:65 Jäger:65 Otto:65 Sommer:60 Groß:60 Seidel:60 Heinrich:60
    Brandt:60 Haas:60 Schreiber:60 Graf:60 Schulte:55 Dietrich:55 Ziegler:55 Kuhn:55
    Kühn:55 Pohl:55 Engel:55 Horn:55 Busch:55 Bergmann:55 Thomas:50 Voigt:50 Sauer:50
    Arnold:50 Wolff:50 Pfeiffer:50
    """
)
_FR_MALE = _table(
    """
    Jean:160 Pierre:110 Michel:100 Philippe:90 Alain:80 Nicolas:85 Patrick:70 Christophe:75
    Daniel:55 Bernard:50 Éric:60 Laurent:65 Frédéric:60 Stéphane:60 David:55 Julien:60
    Sébastien:60 Olivier:60 Thierry:50 Pascal:50 François:60 Thomas:55 Antoine:45 Romain:40
    Maxime:40 Alexandre:45 Guillaume:45 Mathieu:40 Vincent:45 Jérôme:45 Hugo:35 Lucas:35
    Louis:35 Gabriel:30 Arthur:30 Raphaël:25 Théo:25 Paul:35 Benoît:30 Cédric:30 Yves:35
    Claude:40 Jacques:50 Didier:35 Gilles:35 Dominique:30 Fabrice:30 Bruno:35 Emmanuel:30
    """
)
_FR_FEMALE = _table(
    """
    Marie:180 Nathalie:90 Isabelle:90 Sylvie:80 Catherine:75 Sophie:75 Christine:70
    Valérie:65 Sandrine:65 Véronique:60 Céline:60 Stéphanie:60 Julie:60 Aurélie:50 Camille:50
    Émilie:50 Laura:40 Léa:40 Manon:35 Chloé:35 Emma:35 Sarah:35 Anne:50 Monique:45
    Françoise:50 Martine:50 Nicole:45 Brigitte:40 Hélène:40 Claire:40 Caroline:40 Audrey:35
    Élodie:35 Mélanie:35 Virginie:35 Pauline:35 Charlotte:30 Inès:25 Juliette:25 Alice:25
    Louise:25 Florence:35 Patricia:35 Dominique:25 Corinne:30 Laurence:30 Agnès:30 Anaïs:25
    """
)
_FR_SURNAMES = _table(
    """
    Martin:240 Bernard:120 Thomas:110 Petit:105 Robert:100 Richard:100 Durand:95 Dubois:95
    Moreau:90 Laurent:90 Simon:85 Michel:85 Lefebvre:80 Leroy:75 Roux:70 David:70 Bertrand:70
    Morel:65 Fournier:65 Girard:65 Bonnet:60 Dupont:60 Lambert:60 Fontaine:58 Rousseau:58
    Vincent:58 Muller:55 Lefèvre:55 Faure:55 André:55 Mercier:55 Blanc:55 Guérin:50 Boyer:50
    Garnier:50 Chevalier:50 François:50 Legrand:48 Gauthier:48 Garcia:48 Perrin:48
    Robin:46 Clément:46 Morin:46 Nicolas:45 Henry:45 Roussel:45 Mathieu:44 Gautier:44
    Masson:44 Marchand:43 Duval:43 Denis:42 Dumont:42 Marie:42 Lemaire:41 Noël:41 Meyer:40
    Dufour:40 Meunier:40 Brun:40 Blanchard:39 Giraud:39 Joly:39 Rivière:38 Lucas:38
    Brunet:38 Gaillard:37 Barbier:37 Arnaud:37 Martinez:37 Gérard:36 Roche:36 Renard:36
    Schmitt:36 Roy:35 Leroux:35 Colin:35 Vidal:35 Caron:35 Picard:34 Roger:34 Fabre:34
    Aubert:34 Lemoine:33 Renaud:33 Dumas:33 Lacroix:33 Olivier:32 Philippe:32 Bourgeois:32
    Pierre:32 Benoît:31 Rey:31 Leclerc:31 Payet:30 Rolland:30 Leclercq:30 Guillaume:30
    Lecomte:30 Lopez:30 Jean:29 Dupuy:29 Guillot:29 Hubert:29 Berger:29 Carpentier:28
    """
)

# Nicknames: formal name -> common short forms (about a hundred pairs).
_NICKNAMES: dict[str, tuple[str, ...]] = {
    "William": ("Bill", "Will", "Billy", "Liam"),
    "Elizabeth": ("Liz", "Beth", "Betty", "Lizzie", "Eliza"),
    "Robert": ("Bob", "Rob", "Bobby", "Robbie"),
    "Katherine": ("Kate", "Katie", "Kathy", "Kat"),
    "Catherine": ("Cathy", "Kate", "Cat"),
    "Kathryn": ("Kate", "Katie", "Kathy"),
    "Kathleen": ("Kathy", "Kate"),
    "Margaret": ("Maggie", "Meg", "Peggy"),
    "Richard": ("Rick", "Rich", "Dick", "Ricky"),
    "James": ("Jim", "Jimmy", "Jamie"),
    "John": ("Johnny", "Jack", "Jon"),
    "Michael": ("Mike", "Mikey", "Mick"),
    "Christopher": ("Chris", "Topher"),
    "Matthew": ("Matt",),
    "Anthony": ("Tony",),
    "Daniel": ("Dan", "Danny"),
    "Joseph": ("Joe", "Joey"),
    "Thomas": ("Tom", "Tommy"),
    "Charles": ("Charlie", "Chuck", "Chas"),
    "David": ("Dave", "Davey"),
    "Steven": ("Steve",),
    "Stephen": ("Steve",),
    "Andrew": ("Andy", "Drew"),
    "Joshua": ("Josh",),
    "Jonathan": ("Jon", "Jonny"),
    "Nicholas": ("Nick", "Nicky"),
    "Benjamin": ("Ben", "Benny"),
    "Samuel": ("Sam", "Sammy"),
    "Alexander": ("Alex", "Xander", "Sasha"),
    "Edward": ("Ed", "Eddie", "Ted", "Ned"),
    "Timothy": ("Tim", "Timmy"),
    "Patrick": ("Pat", "Paddy"),
    "Gregory": ("Greg",),
    "Kenneth": ("Ken", "Kenny"),
    "Ronald": ("Ron", "Ronnie"),
    "Donald": ("Don", "Donnie"),
    "Raymond": ("Ray",),
    "Lawrence": ("Larry",),
    "Gerald": ("Jerry", "Gerry"),
    "Jeffrey": ("Jeff",),
    "Douglas": ("Doug",),
    "Peter": ("Pete",),
    "Frederick": ("Fred", "Freddie"),
    "Zachary": ("Zach", "Zack"),
    "Nathan": ("Nate",),
    "Nathaniel": ("Nate", "Nat"),
    "Jacob": ("Jake",),
    "Phillip": ("Phil",),
    "Philip": ("Phil",),
    "Walter": ("Walt", "Wally"),
    "Eugene": ("Gene",),
    "Vincent": ("Vince", "Vinny"),
    "Leonard": ("Len", "Leo", "Lenny"),
    "Albert": ("Al", "Bert"),
    "Harold": ("Harry", "Hal"),
    "Henry": ("Hank", "Harry"),
    "Francis": ("Frank",),
    "Franklin": ("Frank",),
    "Theodore": ("Ted", "Teddy", "Theo"),
    "Mitchell": ("Mitch",),
    "Stanley": ("Stan",),
    "Russell": ("Russ",),
    "Randall": ("Randy",),
    "Terrence": ("Terry",),
    "Jennifer": ("Jen", "Jenny", "Jenn"),
    "Jessica": ("Jess", "Jessie"),
    "Patricia": ("Pat", "Patty", "Trish", "Tricia"),
    "Susan": ("Sue", "Susie"),
    "Deborah": ("Deb", "Debbie"),
    "Debra": ("Deb", "Debbie"),
    "Rebecca": ("Becky", "Becca"),
    "Barbara": ("Barb", "Barbie"),
    "Christine": ("Chris", "Tina", "Chrissy"),
    "Christina": ("Tina", "Chris"),
    "Kimberly": ("Kim",),
    "Pamela": ("Pam",),
    "Victoria": ("Vicky", "Tori"),
    "Samantha": ("Sam", "Sammy"),
    "Alexandra": ("Alex", "Lexi", "Sandra"),
    "Abigail": ("Abby",),
    "Jacqueline": ("Jackie",),
    "Judith": ("Judy",),
    "Dorothy": ("Dot", "Dottie"),
    "Teresa": ("Terry", "Tess"),
    "Theresa": ("Terry", "Tess", "Tessa"),
    "Cynthia": ("Cindy",),
    "Sandra": ("Sandy",),
    "Amanda": ("Mandy",),
    "Melissa": ("Missy", "Mel"),
    "Stephanie": ("Steph",),
    "Allison": ("Ally", "Allie"),
    "Valerie": ("Val",),
    "Gabrielle": ("Gabby", "Elle"),
    "Frances": ("Fran", "Frankie"),
    "Josephine": ("Jo", "Josie"),
    "Madeline": ("Maddie", "Maddy"),
    "Madison": ("Maddie",),
    "Natalie": ("Nat",),
    "Olivia": ("Liv", "Livvy"),
    "Isabella": ("Bella", "Izzy"),
    "Sophia": ("Sophie",),
    "Evelyn": ("Evie",),
    "Charlotte": ("Charlie", "Lottie"),
    "Emily": ("Em", "Emmy"),
    "Caroline": ("Carrie", "Caro"),
    "Carolyn": ("Carol", "Carrie"),
    "Eleanor": ("Ellie", "Nell"),
    "Mary": ("Molly", "Polly", "Mae"),
    "Sarah": ("Sally", "Sadie"),
    "Ann": ("Annie",),
    "Anna": ("Annie",),
    "Angela": ("Angie",),
    "Cassandra": ("Cassie",),
    "Lillian": ("Lily", "Lil"),
    "Virginia": ("Ginny", "Ginger"),
    "Beverly": ("Bev",),
    "Danielle": ("Dani",),
    "Michelle": ("Shelly", "Mimi"),
    "Johannes": ("Hans", "Jo"),
    "Wolfgang": ("Wolf",),
    "Friedrich": ("Fritz",),
    "Katharina": ("Kathi", "Katja"),
    "Franziska": ("Franzi",),
    "Maximilian": ("Max",),
    "Matthias": ("Matze",),
    "Sebastian": ("Basti",),
    "Christiane": ("Christa",),
    "Stefanie": ("Steffi",),
    "Frédéric": ("Fred",),
    "Guillaume": ("Guy",),
}
_FORMAL_OF: dict[str, tuple[str, ...]] = {}
for _formal, _nicks in _NICKNAMES.items():
    for _nick in _nicks:
        _FORMAL_OF[_nick] = (*_FORMAL_OF.get(_nick, ()), _formal)
del _formal, _nicks, _nick

# Syllables for the long tail of synthetic surnames, per naming style.
_TAIL_SYLLABLES: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "en": (
        tuple(
            [
                "Ash",
                "Brad",
                "Brom",
                "Cal",
                "Chal",
                "Chester",
                "Crom",
                "Dal",
                "Dar",
                "Den",
                "Dun",
                "Elm",
                "Ever",
                "Fair",
                "Far",
                "Fen",
                "Gar",
                "Glad",
                "Gold",
                "Gran",
                "Green",
                "Hal",
                "Ham",
                "Har",
                "Hart",
                "Hay",
                "Hol",
                "Horn",
                "Hux",
                "Kel",
                "Ken",
                "Kings",
                "Lang",
                "Lar",
                "Lath",
                "Lock",
                "Mar",
                "Mel",
                "Mid",
                "Mil",
                "Mor",
                "Nor",
                "North",
                "Ox",
                "Pem",
                "Pen",
                "Prest",
                "Rad",
                "Rain",
                "Red",
                "Ridge",
                "Rock",
                "Rom",
                "Roth",
                "Rush",
                "Sal",
                "Sand",
                "Shel",
                "Sher",
                "Stan",
                "Stam",
                "Stock",
                "Sum",
                "Sut",
                "Tal",
                "Thorn",
                "Til",
                "Tram",
                "Wal",
                "War",
                "Wat",
                "Wes",
                "Whit",
                "Wick",
                "Wil",
                "Win",
                "Wood",
                "Wor",
                "Yar",
                "Ald",
                "Bar",
                "Bel",
                "Bran",
                "Bur",
                "Cart",
                "Clay",
                "Cord",
                "Cran",
                "Dor",
                "Ed",
                "Ess",
                "Fal",
                "Fitz",
                "Gil",
                "Gor",
                "Hend",
                "Hol",
                "Hur",
                "Kirk",
                "Lin",
                "Man",
                "Marl",
                "Mer",
                "Nash",
                "Pal",
                "Pres",
                "Quin",
                "Ran",
                "Sef",
                "Tem",
                "Ven",
            ]
        ),
        tuple(
            [
                "ford",
                "ley",
                "ton",
                "well",
                "wood",
                "worth",
                "by",
                "field",
                "more",
                "ham",
                "son",
                "man",
                "ridge",
                "brook",
                "stone",
                "dale",
                "wick",
                "ington",
                "er",
                "ers",
                "ett",
                "cott",
                "hurst",
                "land",
                "low",
                "mont",
                "ney",
                "ward",
                "win",
                "stead",
                "bury",
                "dell",
                "ock",
                "ard",
                "ings",
                "kin",
                "den",
                "gate",
                "thorpe",
                "ling",
                "cliffe",
                "shaw",
                "lock",
                "ey",
                "in",
                "es",
                "all",
                "ick",
                "ton",
            ]
        ),
    ),
    "de": (
        tuple(
            [
                "Alt",
                "Berg",
                "Bir",
                "Brand",
                "Buch",
                "Dorn",
                "Eich",
                "Eisen",
                "Feld",
                "Fried",
                "Gold",
                "Grün",
                "Hage",
                "Hart",
                "Heil",
                "Hirsch",
                "Hoch",
                "Holz",
                "Kalt",
                "Kirch",
                "Klar",
                "Kreuz",
                "Lind",
                "Mark",
                "Mühl",
                "Neu",
                "Ober",
                "Rein",
                "Ros",
                "Sand",
                "Schön",
                "Stein",
                "Tann",
                "Unter",
                "Wald",
                "Weiss",
                "Wein",
                "Wies",
                "Wil",
                "Wolf",
                "Zell",
                "Adel",
                "Bach",
                "Dietz",
                "Ehr",
                "Falk",
                "Geb",
                "Haber",
            ]
        ),
        tuple(
            [
                "mann",
                "er",
                "inger",
                "berg",
                "bauer",
                "hofer",
                "meier",
                "hardt",
                "ner",
                "stein",
                "brunner",
                "feld",
                "acher",
                "ling",
                "huber",
                "hausen",
                "müller",
                "lein",
                "mayer",
                "rich",
                "bach",
                "thaler",
                "wald",
                "hof",
                "kamp",
            ]
        ),
    ),
    "fr": (
        tuple(
            [
                "Beau",
                "Bel",
                "Bon",
                "Bou",
                "Cha",
                "Che",
                "Cla",
                "Cour",
                "Dela",
                "Des",
                "Du",
                "Fon",
                "Gau",
                "Gir",
                "Lam",
                "Lan",
                "Lar",
                "Lau",
                "Mar",
                "Mon",
                "Mor",
                "Per",
                "Pon",
                "Roche",
                "Sau",
                "Ser",
                "Ver",
                "Vil",
                "Bour",
                "Cor",
                "Fer",
                "Gran",
                "Jol",
                "Lev",
                "Mal",
                "Mas",
                "Pel",
                "Riv",
                "Tes",
            ]
        ),
        tuple(
            [
                "lier",
                "rand",
                "mont",
                "champ",
                "val",
                "court",
                "ville",
                "net",
                "eau",
                "ard",
                "ot",
                "in",
                "ier",
                "on",
                "ais",
                "ault",
                "eron",
                "oux",
                "ac",
                "et",
                "aud",
                "enne",
                "ière",
                "ny",
                "ois",
            ]
        ),
    ),
}
_TAIL_SIZE = 60_000


class _City(NamedTuple):
    name: str
    state: str
    postcode: tuple[str, ...]
    """How to make a postcode: ("zip", prefixes…), ("fsa", letter), ("uk", areas…),
    ("de", lo, hi) two-digit prefix range, or ("list", codes…)."""
    areas: tuple[str, ...]
    """Phone area codes (national, without trunk prefix)."""
    weight: float
    alt: tuple[str, ...] = ()
    """Other ways people write the city name."""


def _cities(rows: str) -> list[_City]:
    out: list[_City] = []
    for line in rows.strip().splitlines():
        parts = [p.strip() for p in line.split("|")]
        name, state, pc, areas, weight = parts[:5]
        alt = tuple(a for a in parts[5].split(",") if a) if len(parts) > 5 else ()
        out.append(_City(name, state, tuple(pc.split()), tuple(areas.split()), float(weight), alt))
    return out


_US_CITIES = _cities(
    """
    New York|NY|zip 100 101 102 103 104 112 113 114|212 646 718 917 347|84|NYC,New York City
    Los Angeles|CA|zip 900 901 902 913 917 918|213 310 323 818 424|39|LA
    Chicago|IL|zip 606 607|312 773 872|27
    Houston|TX|zip 770 772|713 281 832|23
    Phoenix|AZ|zip 850 852|602 480 623|16
    Philadelphia|PA|zip 191|215 267|16|Philly
    San Antonio|TX|zip 782|210|15
    San Diego|CA|zip 921|619 858|14
    Dallas|TX|zip 752 753|214 469 972|13
    San Jose|CA|zip 951|408 669|10
    Austin|TX|zip 787|512 737|10
    Jacksonville|FL|zip 322|904|9
    Columbus|OH|zip 432|614|9
    Fort Worth|TX|zip 761|817|9|Ft. Worth,Ft Worth
    Charlotte|NC|zip 282|704 980|9
    Indianapolis|IN|zip 462|317|9
    San Francisco|CA|zip 941|415 628|9|SF,San Fran
    Seattle|WA|zip 981|206|8
    Denver|CO|zip 802|303 720|7
    Washington|DC|zip 200|202|7|Washington DC,Washington D.C.
    Boston|MA|zip 021 022|617 857|7
    Nashville|TN|zip 372|615|7
    Detroit|MI|zip 482|313|6
    Portland|OR|zip 972|503 971|6
    Las Vegas|NV|zip 891|702 725|6
    Memphis|TN|zip 381|901|6
    Louisville|KY|zip 402|502|6
    Baltimore|MD|zip 212|410 443|6
    Milwaukee|WI|zip 532|414|6
    Albuquerque|NM|zip 871|505|5
    Atlanta|GA|zip 303|404 470 678|5
    Miami|FL|zip 331|305 786|4
    Minneapolis|MN|zip 554|612|4
    Tampa|FL|zip 336|813|4
    Orlando|FL|zip 328|407|3
    Cleveland|OH|zip 441|216|4
    Pittsburgh|PA|zip 152|412|3
    St. Louis|MO|zip 631|314|3|Saint Louis,St Louis
    Kansas City|MO|zip 641|816|5
    Sacramento|CA|zip 958|916|5
    Salt Lake City|UT|zip 841|801|2|SLC
    Raleigh|NC|zip 276|919|5
    Omaha|NE|zip 681|402|5
    Tucson|AZ|zip 857|520|5
    Newark|NJ|zip 071|973 862|3
    Hartford|CT|zip 061|860|1
    Providence|RI|zip 029|401|2
    Buffalo|NY|zip 142|716|3
    Richmond|VA|zip 232|804|2
    New Orleans|LA|zip 701|504|4
    Oklahoma City|OK|zip 731|405|7
    Boise|ID|zip 837|208|2
    Madison|WI|zip 537|608|3
    Des Moines|IA|zip 503|515|2
    Anchorage|AK|zip 995|907|3
    Honolulu|HI|zip 968|808|3
    Springfield|IL|zip 627|217|1
    Springfield|MA|zip 011|413|1
    Portland|ME|zip 041|207|1
    Cambridge|MA|zip 021|617|1
    """
)
_US_STATE_NAMES: dict[str, str] = {
    "NY": "New York", "CA": "California", "IL": "Illinois", "TX": "Texas", "AZ": "Arizona",
    "PA": "Pennsylvania", "FL": "Florida", "OH": "Ohio", "NC": "North Carolina",
    "IN": "Indiana", "WA": "Washington", "CO": "Colorado", "DC": "District of Columbia",
    "MA": "Massachusetts", "TN": "Tennessee", "MI": "Michigan", "OR": "Oregon", "NV": "Nevada",
    "KY": "Kentucky", "MD": "Maryland", "WI": "Wisconsin", "NM": "New Mexico", "GA": "Georgia",
    "MN": "Minnesota", "MO": "Missouri", "UT": "Utah", "NE": "Nebraska", "NJ": "New Jersey",
    "CT": "Connecticut", "RI": "Rhode Island", "VA": "Virginia", "LA": "Louisiana",
    "OK": "Oklahoma", "ID": "Idaho", "IA": "Iowa", "AK": "Alaska", "HI": "Hawaii",
    "ME": "Maine", "ON": "Ontario", "QC": "Quebec", "BC": "British Columbia", "AB": "Alberta",
    "MB": "Manitoba", "NS": "Nova Scotia",
}  # fmt: skip
_GB_CITIES = _cities(
    """
    London|Greater London|uk SW SE N E W NW EC WC|20|90
    Manchester|Greater Manchester|uk M|161|25
    Birmingham|West Midlands|uk B|121|25
    Leeds|West Yorkshire|uk LS|113|15
    Glasgow|Scotland|uk G|141|15
    Edinburgh|Scotland|uk EH|131|12
    Bristol|Bristol|uk BS|117|10
    Liverpool|Merseyside|uk L|151|10
    Sheffield|South Yorkshire|uk S|114|10
    Cardiff|Wales|uk CF|29|8
    Nottingham|Nottinghamshire|uk NG|115|7
    Leicester|Leicestershire|uk LE|116|7
    Newcastle upon Tyne|Tyne and Wear|uk NE|191|7|Newcastle
    Brighton|East Sussex|uk BN|1273|5|Brighton and Hove
    Oxford|Oxfordshire|uk OX|1865|4
    Cambridge|Cambridgeshire|uk CB|1223|4
    Belfast|Northern Ireland|uk BT|28|6
    """
)
_DE_CITIES = _cities(
    """
    Berlin|Berlin|de 10 14|30|36
    Hamburg|Hamburg|de 20 22|40|18
    München|Bayern|de 80 81|89|15|Munich,Muenchen,Munchen
    Köln|Nordrhein-Westfalen|de 50 51|221|11|Cologne,Koeln,Koln
    Frankfurt am Main|Hessen|de 60 60|69|7.5|Frankfurt,Frankfurt a.M.
    Stuttgart|Baden-Württemberg|de 70 70|711|6.3
    Düsseldorf|Nordrhein-Westfalen|de 40 40|211|6.2|Duesseldorf,Dusseldorf
    Leipzig|Sachsen|de 04 04|341|6
    Dortmund|Nordrhein-Westfalen|de 44 44|231|5.9
    Essen|Nordrhein-Westfalen|de 45 45|201|5.8
    Bremen|Bremen|de 28 28|421|5.7
    Dresden|Sachsen|de 01 01|351|5.5
    Hannover|Niedersachsen|de 30 30|511|5.4|Hanover
    Nürnberg|Bayern|de 90 90|911|5.2|Nuremberg,Nuernberg
    """
)
_FR_CITIES = _cities(
    """
    Paris|Île-de-France|list 75001 75002 75003 75004 75005 75006 75007 75008 75009 75010 75011 75012 75013 75014 75015 75016 75017 75018 75019 75020|1|21
    Marseille|Provence-Alpes-Côte d'Azur|list 13001 13002 13003 13004 13005 13006 13007 13008 13009 13010 13011 13012 13013|4|8.7
    Lyon|Auvergne-Rhône-Alpes|list 69001 69002 69003 69004 69005 69006 69007 69008 69009|4|5.2
    Toulouse|Occitanie|list 31000 31100 31200 31300 31400 31500|5|4.9
    Nice|Provence-Alpes-Côte d'Azur|list 06000 06100 06200 06300|4|3.4
    Nantes|Pays de la Loire|list 44000 44100 44200 44300|2|3.1
    Strasbourg|Grand Est|list 67000 67100 67200|3|2.8
    Montpellier|Occitanie|list 34000 34070 34080 34090|4|2.9
    Bordeaux|Nouvelle-Aquitaine|list 33000 33100 33200 33300 33800|5|2.5
    Lille|Hauts-de-France|list 59000 59160 59260 59800|3|2.3
    """
)
_CA_CITIES = _cities(
    """
    Toronto|ON|fsa M|416 647 437|28
    Montréal|QC|fsa H|514 438|17|Montreal
    Calgary|AB|fsa T|403 587|13
    Ottawa|ON|fsa K|613 343|10
    Edmonton|AB|fsa T|780 587|10
    Vancouver|BC|fsa V|604 778|7
    Winnipeg|MB|fsa R|204|7
    Québec|QC|fsa G|418 581|5|Quebec City,Quebec,Ville de Québec
    Hamilton|ON|fsa L|905 289|5
    Halifax|NS|fsa B|902|4
    """
)

_US_STREETS = tuple(
    [
        "Main",
        "Oak",
        "Maple",
        "Cedar",
        "Elm",
        "Pine",
        "Washington",
        "Lake",
        "Hill",
        "Park",
        "Walnut",
        "Sunset",
        "Lincoln",
        "Jackson",
        "Church",
        "Highland",
        "Willow",
        "Madison",
        "Franklin",
        "Jefferson",
        "Chestnut",
        "Spring",
        "Ridge",
        "Meadow",
        "River",
        "Forest",
        "Hillside",
        "Valley",
        "Center",
        "Union",
        "Broadway",
        "Market",
        "Mill",
        "Prospect",
        "Adams",
        "Lakeview",
        "Birch",
        "Cherry",
        "Dogwood",
        "Magnolia",
        "Sycamore",
        "Poplar",
        "Spruce",
        "Hickory",
        "Laurel",
        "Jones",
        "Grant",
        "Monroe",
        "Second",
        "Third",
        "Fourth",
        "Fifth",
        "Sixth",
        "Seventh",
        "Eighth",
        "Ninth",
        "Tenth",
        "1st",
        "2nd",
        "3rd",
        "4th",
        "5th",
        "6th",
        "Orchard",
        "Heritage",
        "Greenwood",
        "Woodland",
        "Fairview",
        "Riverside",
        "Lakeshore",
        "Canyon",
        "Summit",
        "Vista",
        "Colonial",
        "Kingston",
        "Stonebridge",
        "Briarwood",
        "Country Club",
        "Cambridge",
        "Oxford",
        "Carriage",
        "Elmwood",
    ]
)
_US_STREET_TYPES: tuple[tuple[str, str], ...] = (
    ("Street", "St"), ("Avenue", "Ave"), ("Road", "Rd"), ("Drive", "Dr"), ("Lane", "Ln"),
    ("Boulevard", "Blvd"), ("Court", "Ct"), ("Place", "Pl"), ("Way", "Way"), ("Circle", "Cir"),
    ("Parkway", "Pkwy"), ("Terrace", "Ter"),
)  # fmt: skip
_US_STREET_TYPE_WEIGHTS = (30, 20, 14, 12, 8, 5, 5, 3, 3, 2, 2, 1)
_US_DIRECTIONS: tuple[tuple[str, str], ...] = (
    ("North", "N"),
    ("South", "S"),
    ("East", "E"),
    ("West", "W"),
)
_GB_STREETS = tuple(
    [
        "High",
        "Station",
        "Church",
        "Victoria",
        "Park",
        "London",
        "Green",
        "Manor",
        "Kings",
        "Queens",
        "Mill",
        "Albert",
        "Grange",
        "Windsor",
        "York",
        "Springfield",
        "Chapel",
        "Alexandra",
        "Richmond",
        "Stanley",
        "Broadway",
        "Elm",
        "Oak",
        "Beech",
        "Orchard",
        "Meadow",
        "Cromwell",
        "Westfield",
        "Newton",
        "Highfield",
        "St John's",
        "Marlborough",
    ]
)
_GB_STREET_TYPES: tuple[tuple[str, str], ...] = (
    ("Road", "Rd"), ("Street", "St"), ("Lane", "Ln"), ("Avenue", "Ave"), ("Close", "Cl"),
    ("Drive", "Dr"), ("Gardens", "Gdns"), ("Crescent", "Cres"), ("Way", "Way"),
    ("Place", "Pl"), ("Grove", "Gr"), ("Terrace", "Terr"),
)  # fmt: skip
_GB_STREET_TYPE_WEIGHTS = (34, 20, 8, 8, 6, 6, 5, 4, 3, 2, 2, 2)
_DE_STREETS = tuple(
    [
        "Haupt",
        "Bahnhof",
        "Garten",
        "Schul",
        "Dorf",
        "Kirch",
        "Wald",
        "Linden",
        "Berg",
        "Schiller",
        "Goethe",
        "Mozart",
        "Ring",
        "Rosen",
        "Post",
        "Markt",
        "Friedrich",
        "Bismarck",
        "Blumen",
        "Wiesen",
        "Birken",
        "Eichen",
        "Feld",
        "Sonnen",
        "Mühlen",
        "Kant",
        "Beethoven",
        "Lessing",
        "Uhland",
        "Heine",
        "Parkstraße",
    ]
)
_DE_STREET_SUFFIXES = ("straße", "weg", "allee", "platz", "ring", "gasse")
_DE_STREET_SUFFIX_WEIGHTS = (60, 18, 7, 6, 5, 4)
_FR_STREETS = tuple(
    [
        "de la République",
        "Victor Hugo",
        "Jean Jaurès",
        "de la Paix",
        "Pasteur",
        "du Général de Gaulle",
        "Gambetta",
        "des Lilas",
        "de Paris",
        "Voltaire",
        "Nationale",
        "de la Gare",
        "du Moulin",
        "des Écoles",
        "Saint-Martin",
        "de la Liberté",
        "Émile Zola",
        "Carnot",
        "Foch",
        "des Roses",
        "du Château",
        "Jules Ferry",
        "de l'Église",
        "Anatole France",
        "Molière",
        "des Acacias",
        "Lafayette",
        "de Verdun",
    ]
)
_FR_STREET_TYPES: tuple[tuple[str, str], ...] = (
    ("rue", "r."), ("avenue", "av."), ("boulevard", "bd"), ("place", "pl."), ("allée", "all."),
    ("impasse", "imp."), ("chemin", "ch."),
)  # fmt: skip
_FR_STREET_TYPE_WEIGHTS = (60, 15, 10, 5, 4, 3, 3)


@dataclass(frozen=True, slots=True)
class _Country:
    code: str
    name: str
    variants: tuple[str, ...]
    weight: float
    cities: tuple[_City, ...]
    male: tuple[tuple[str, float], ...]
    female: tuple[tuple[str, float], ...]
    surnames: tuple[tuple[str, float], ...]
    tail_style: str
    tail_share: float
    providers: tuple[tuple[str, float], ...]
    legal: tuple[tuple[str, float], ...]
    tld: str
    currency: str
    mobile: tuple[str, ...]
    """National prefixes of mobile numbers."""


_COUNTRIES: tuple[_Country, ...] = (
    _Country(
        "US", "United States", ("USA", "US", "U.S.", "U.S.A.", "United States of America", "usa"),
        70, tuple(_US_CITIES), tuple(_US_MALE), tuple(_US_FEMALE), tuple(_US_SURNAMES),
        "en", 0.42,
        tuple(_table(
            "gmail.com:44 yahoo.com:12 hotmail.com:6 outlook.com:8 aol.com:3 icloud.com:8 "
            "comcast.net:3 att.net:2 verizon.net:1 msn.com:1 live.com:2 me.com:1 protonmail.com:1 "
            "sbcglobal.net:1 ymail.com:0.5 fastmail.com:0.3"
        )),
        tuple(_table("Inc.:45 LLC:35 Corp.:10 Co.:5 Group:5")), "com", "USD", (),
    ),
    _Country(
        "GB", "United Kingdom", ("UK", "GB", "U.K.", "Great Britain", "England", "uk"),
        10, tuple(_GB_CITIES), tuple(_US_MALE), tuple(_US_FEMALE), tuple(_GB_SURNAMES),
        "en", 0.38,
        tuple(_table(
            "gmail.com:38 hotmail.co.uk:14 yahoo.co.uk:8 outlook.com:9 btinternet.com:6 "
            "sky.com:4 icloud.com:7 live.co.uk:4 googlemail.com:3 virginmedia.com:3 aol.co.uk:1"
        )),
        tuple(_table("Ltd:70 Limited:15 PLC:5 LLP:10")), "co.uk", "GBP", ("7",),
    ),
    _Country(
        "CA", "Canada", ("CA", "CAN", "canada"),
        8, tuple(_CA_CITIES), tuple(_US_MALE), tuple(_US_FEMALE), tuple(_US_SURNAMES),
        "en", 0.40,
        tuple(_table(
            "gmail.com:42 hotmail.com:12 yahoo.ca:7 outlook.com:9 shaw.ca:5 rogers.com:5 "
            "sympatico.ca:3 videotron.ca:3 icloud.com:7 telus.net:3 live.ca:2"
        )),
        tuple(_table("Inc.:55 Ltd.:30 Corp.:10 Ltée:5")), "ca", "CAD", (),
    ),
    _Country(
        "DE", "Germany", ("DE", "Deutschland", "GER", "germany"),
        7, tuple(_DE_CITIES), tuple(_DE_MALE), tuple(_DE_FEMALE), tuple(_DE_SURNAMES),
        "de", 0.40,
        tuple(_table(
            "gmail.com:30 web.de:22 gmx.de:18 gmx.net:6 t-online.de:10 outlook.de:4 yahoo.de:4 "
            "posteo.de:2 icloud.com:3 freenet.de:1"
        )),
        tuple(_table("GmbH:75 AG:10 KG:5 GmbH_&_Co._KG:10")), "de", "EUR", ("151", "152", "160", "170", "171", "172", "176"),
    ),
    _Country(
        "FR", "France", ("FR", "FRA", "france", "République française"),
        5, tuple(_FR_CITIES), tuple(_FR_MALE), tuple(_FR_FEMALE), tuple(_FR_SURNAMES),
        "fr", 0.40,
        tuple(_table(
            "gmail.com:38 orange.fr:14 free.fr:10 hotmail.fr:9 laposte.net:6 sfr.fr:6 "
            "yahoo.fr:7 wanadoo.fr:4 outlook.fr:4 icloud.com:2"
        )),
        tuple(_table("SAS:45 SA:25 SARL:30")), "fr", "EUR", ("6", "7"),
    ),
)  # fmt: skip

_PROVIDER_TYPOS: dict[str, tuple[str, ...]] = {
    "gmail.com": ("gmial.com", "gmail.co", "gmai.com", "gmail.con", "gnail.com", "gmaill.com"),
    "yahoo.com": ("yaho.com", "yahoo.co", "yahooo.com", "yhoo.com"),
    "hotmail.com": ("hotmial.com", "hotmail.co", "hotmai.com", "hotmal.com"),
    "outlook.com": ("outlok.com", "outlook.co", "outllok.com"),
    "icloud.com": ("iclod.com", "icloud.co", "icoud.com"),
    "aol.com": ("aol.co", "aoll.com"),
}
_PLUS_PROVIDERS = frozenset(
    ("gmail.com", "googlemail.com", "outlook.com", "outlook.de", "outlook.fr", "icloud.com",
     "fastmail.com", "protonmail.com", "hotmail.com", "live.com", "yahoo.com", "me.com")
)  # fmt: skip
_DOT_INSENSITIVE = frozenset(("gmail.com", "googlemail.com"))
_PLUS_TAGS = ("shop", "news", "crm", "promo", "work", "spam", "orders", "2024", "amazon", "list")

_INDUSTRIES: dict[str, tuple[str, ...]] = {
    "Software": ("Software", "Labs", "Technologies", "Systems", "Analytics", "Cloud", "Digital"),
    "Retail": ("Outfitters", "Goods", "Market", "Store", "Supply", "Trading"),
    "Manufacturing": ("Manufacturing", "Industries", "Works", "Fabrication", "Components"),
    "Healthcare": ("Health", "Medical", "Clinic", "Care", "Dental"),
    "Financial Services": ("Capital", "Financial", "Partners", "Advisors", "Wealth"),
    "Education": ("Academy", "Learning", "Institute", "Education"),
    "Logistics": ("Logistics", "Freight", "Transport", "Shipping"),
    "Construction": ("Construction", "Builders", "Contracting", "Homes"),
    "Hospitality": ("Hotels", "Hospitality", "Restaurants", "Catering"),
    "Marketing": ("Media", "Marketing", "Creative", "Agency", "Studio"),
    "Real Estate": ("Realty", "Properties", "Real Estate", "Estates"),
    "Legal": ("Law", "Legal", "Law Group"),
    "Consulting": ("Consulting", "Group", "Partners", "Associates", "Solutions"),
    "Energy": ("Energy", "Solar", "Power", "Renewables"),
    "Food & Beverage": ("Foods", "Brewing", "Coffee", "Bakery", "Kitchen"),
    "Telecommunications": ("Telecom", "Networks", "Communications", "Wireless"),
    "Nonprofit": ("Foundation", "Trust", "Alliance", "Society"),
}
_INDUSTRY_WEIGHTS = (18, 10, 9, 9, 8, 5, 5, 5, 4, 6, 4, 3, 6, 3, 4, 3, 3)
_BRAND_HEADS = tuple(
    [
        "Blue",
        "North",
        "South",
        "West",
        "East",
        "Bright",
        "Clear",
        "Iron",
        "Silver",
        "Golden",
        "Red",
        "Green",
        "Summit",
        "Peak",
        "Pine",
        "Oak",
        "Cedar",
        "Stone",
        "River",
        "Lake",
        "Harbor",
        "Sun",
        "Star",
        "Swift",
        "True",
        "Prime",
        "Apex",
        "Nova",
        "Vertex",
        "Atlas",
        "Orion",
        "Falcon",
        "Eagle",
        "Fox",
        "Wolf",
        "Bear",
        "Maple",
        "Birch",
        "Copper",
        "Crystal",
        "Frost",
        "Storm",
        "Cloud",
        "Sky",
        "Ever",
        "Bold",
        "Wise",
        "Next",
        "Open",
        "Core",
        "Grand",
        "Hill",
        "Bay",
        "Meadow",
    ]
)
_BRAND_TAILS = tuple(
    [
        "peak",
        "wind",
        "lane",
        "bridge",
        "water",
        "field",
        "stone",
        "point",
        "line",
        "works",
        "wave",
        "path",
        "gate",
        "view",
        "light",
        "forge",
        "ridge",
        "crest",
        "leaf",
        "rock",
        "port",
        "ward",
        "spring",
        "haven",
        "wood",
        "vale",
        "dale",
        "star",
        "mark",
        "scape",
    ]
)
_ADJECTIVES = tuple(
    [
        "Blue",
        "Green",
        "Bright",
        "Quiet",
        "Rapid",
        "Silver",
        "Golden",
        "Little",
        "Great",
        "Modern",
        "Smart",
        "Happy",
        "Honest",
        "Noble",
        "Urban",
        "Coastal",
        "Northern",
        "Pacific",
        "Atlantic",
        "Central",
        "United",
        "Global",
        "Pioneer",
        "Liberty",
    ]
)
_NOUNS = tuple(
    [
        "Heron",
        "Fox",
        "Oak",
        "Harbor",
        "Anchor",
        "Compass",
        "Lantern",
        "Summit",
        "Meadow",
        "Bridge",
        "Orchard",
        "Falcon",
        "Beacon",
        "Arrow",
        "Cedar",
        "Willow",
        "Horizon",
        "Keystone",
        "Pillar",
        "Crown",
    ]
)

_TITLES: tuple[tuple[str, tuple[str, ...], float], ...] = (
    ("Chief Executive Officer", ("CEO", "Chief Exec. Officer"), 3),
    ("Chief Technology Officer", ("CTO",), 1.5),
    ("Chief Financial Officer", ("CFO",), 1.5),
    ("Chief Marketing Officer", ("CMO",), 1),
    ("Founder", ("Founder & CEO", "Co-Founder"), 2),
    ("Owner", ("Business Owner", "Owner/Operator"), 4),
    ("President", ("Pres.",), 1.5),
    ("Vice President of Sales", ("VP Sales", "VP of Sales", "V.P. Sales"), 2),
    ("Vice President of Marketing", ("VP Marketing", "VP of Marketing"), 1.5),
    ("Director of Operations", ("Operations Director", "Dir. of Operations"), 2),
    ("Head of Marketing", ("Marketing Lead",), 2),
    ("Marketing Manager", ("Mktg Manager", "Marketing Mgr"), 5),
    ("Sales Manager", ("Sales Mgr",), 4),
    ("Account Executive", ("AE", "Account Exec"), 5),
    ("Sales Representative", ("Sales Rep",), 4),
    ("Customer Success Manager", ("CSM", "Customer Success Mgr"), 3),
    ("Software Engineer", ("Software Developer", "SWE"), 7),
    ("Senior Software Engineer", ("Sr. Software Engineer", "Sr Software Engineer"), 4),
    ("Product Manager", ("PM", "Product Mgr"), 4),
    ("Project Manager", ("Project Mgr", "PM"), 4),
    ("Data Scientist", ("Data Science",), 2),
    ("Data Analyst", ("Analyst",), 3),
    ("Financial Analyst", ("Finance Analyst",), 3),
    ("Accountant", ("Staff Accountant",), 4),
    ("HR Manager", ("Human Resources Manager", "HR Mgr"), 3),
    ("Office Manager", ("Office Mgr",), 4),
    ("Operations Manager", ("Ops Manager", "Operations Mgr"), 4),
    ("IT Manager", ("IT Mgr", "Information Technology Manager"), 3),
    ("General Manager", ("GM",), 2),
    ("Administrative Assistant", ("Admin Assistant", "Admin"), 4),
    ("Purchasing Manager", ("Procurement Manager", "Buyer"), 2),
    ("Consultant", ("Senior Consultant",), 4),
    ("Designer", ("Graphic Designer", "UX Designer"), 3),
    ("Engineer", ("Mechanical Engineer",), 3),
    ("Partner", ("Managing Partner",), 1.5),
    ("Nurse", ("RN", "Registered Nurse"), 2),
    ("Teacher", ("Instructor",), 2),
)

_TAGS = (
    ("newsletter", 10), ("webinar", 6), ("trade-show", 4), ("referral", 5), ("partner", 2),
    ("beta-tester", 2), ("wholesale", 2), ("event:summit-2024", 3), ("lead:inbound", 6),
    ("lead:outbound", 4), ("student", 2), ("nonprofit", 1), ("b2b", 4), ("b2c", 4),
    ("imported", 3), ("do-not-call", 1), ("holiday-promo", 3), ("app-user", 4),
)  # fmt: skip
_PLANS = ("Free", "Starter", "Pro", "Business", "Enterprise")

_QWERTY_ROWS = ("qwertyuiop", "asdfghjkl", "zxcvbnm")
_ADJACENT: dict[str, str] = {}
for _row_index, _row in enumerate(_QWERTY_ROWS):
    for _col, _ch in enumerate(_row):
        _near = [_row[j] for j in (_col - 1, _col + 1) if 0 <= j < len(_row)]
        for _other in (_row_index - 1, _row_index + 1):
            if 0 <= _other < len(_QWERTY_ROWS):
                _near += [
                    _QWERTY_ROWS[_other][j]
                    for j in (_col - 1, _col, _col + 1)
                    if 0 <= j < len(_QWERTY_ROWS[_other])
                ]
        _ADJACENT[_ch] = "".join(_near)
del _row_index, _row, _col, _ch, _near, _other

_FOLD_EMAIL = str.maketrans(
    {
        "ä": "ae", "ö": "oe", "ü": "ue", "ß": "ss", "Ä": "ae", "Ö": "oe", "Ü": "ue",
        "é": "e", "è": "e", "ê": "e", "ë": "e", "à": "a", "â": "a", "î": "i", "ï": "i",
        "ô": "o", "û": "u", "ù": "u", "ç": "c", "É": "e", "È": "e", "Ê": "e", "Î": "i",
        "Ô": "o", "Ç": "c", "ñ": "n", "í": "i", "á": "a", "ó": "o", "ú": "u",
        "'": "", " ": "", "-": "", ".": "",
    }
)  # fmt: skip
_FOLD_PLAIN = str.maketrans(
    {
        "ä": "a", "ö": "o", "ü": "u", "Ä": "A", "Ö": "O", "Ü": "U", "ß": "ss",
        "é": "e", "è": "e", "ê": "e", "ë": "e", "à": "a", "â": "a", "î": "i", "ï": "i",
        "ô": "o", "û": "u", "ù": "u", "ç": "c", "É": "E", "È": "E", "Ê": "E", "Î": "I",
        "Ô": "O", "Ç": "C", "ñ": "n", "í": "i", "á": "a", "ó": "o", "ú": "u",
    }
)  # fmt: skip
_FOLD_GERMAN = str.maketrans(
    {"ä": "ae", "ö": "oe", "ü": "ue", "Ä": "Ae", "Ö": "Oe", "Ü": "Ue", "ß": "ss"}
)


# ---------------------------------------------------------------------------
# Small helpers
# ---------------------------------------------------------------------------


class _Picker(Generic[T]):
    """Weighted choice by bisection over cumulative weights."""

    __slots__ = ("_cum", "_items", "_total")

    def __init__(self, pairs: Sequence[tuple[T, float]]) -> None:
        self._items = [item for item, _ in pairs]
        cum: list[float] = []
        acc = 0.0
        for _, weight in pairs:
            acc += weight
            cum.append(acc)
        self._cum = cum
        self._total = acc

    def pick(self, u: float) -> T:
        """The item at uniform draw ``u`` in [0, 1)."""
        return self._items[bisect.bisect_right(self._cum, u * self._total)]


def _typo(r: Callable[[], float], s: str) -> str:
    """One keyboard typo: substitute a neighbouring key, delete, insert or transpose."""
    n = len(s)
    if n < 2:
        return s
    # Typos rarely hit the first letter.
    i = 1 + int(r() * (n - 1)) if r() < 0.9 else 0
    ch = s[i]
    low = ch.lower()
    x = r()
    if x < 0.4 and low in _ADJACENT:
        near = _ADJACENT[low]
        sub = near[int(r() * len(near))]
        return s[:i] + (sub.upper() if ch.isupper() else sub) + s[i + 1 :]
    if x < 0.65 and n > 3:
        return s[:i] + s[i + 1 :]
    if x < 0.8:
        near = _ADJACENT.get(low, low)
        ins = ch if r() < 0.5 else near[int(r() * len(near))]
        return s[: i + 1] + ins + s[i + 1 :]
    if i == n - 1:
        i -= 1
    return s[:i] + s[i + 1] + s[i] + s[i + 2 :]


def _digit_typo(r: Callable[[], float], digits: str) -> str:
    """Substitute one digit or transpose two neighbouring ones."""
    n = len(digits)
    i = int(r() * n)
    if r() < 0.5 and i < n - 1 and digits[i] != digits[i + 1]:
        return digits[:i] + digits[i + 1] + digits[i] + digits[i + 2 :]
    d = str((int(digits[i]) + 1 + int(r() * 9)) % 10)
    return digits[:i] + d + digits[i + 1 :]


def _whitespace(r: Callable[[], float], s: str) -> str:
    """Leading, trailing or doubled inner spaces, as pasted from elsewhere."""
    if not s:
        return s
    x = r()
    if x < 0.35:
        return s + " "
    if x < 0.6:
        return " " + s
    if x < 0.8 and " " in s:
        return s.replace(" ", "  ", 1)
    return f"  {s} "


def _poisson(r: Callable[[], float], lam: float) -> int:
    """A Poisson draw (Knuth for small means, a rounded normal for large ones)."""
    if lam <= 0:
        return 0
    if lam > 30:
        # Box-Muller from two uniforms keeps every draw on the same stream.
        z = math.sqrt(-2.0 * math.log(1.0 - r())) * math.cos(2.0 * math.pi * r())
        return max(0, round(lam + z * math.sqrt(lam)))
    limit = math.exp(-lam)
    k = 0
    p = r()
    while p > limit:
        k += 1
        p *= r()
    return k


_MONTH_DAYS = (31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)
_GB_LETTERS = "ABDEFGHJLNPQRSTUWXYZ"
_CA_LETTERS = "ABCEGHJKLMNPRSTVWXYZ"
_UNITS = ("Apt", "Apt", "Apt", "Unit", "Suite", "#")

# Phone styles per country: (weights); the formatter is :func:`_fmt_phone`.
_PHONE_STYLE_WEIGHTS: dict[str, tuple[float, ...]] = {
    "US": (38, 22, 8, 8, 8, 4, 3, 4, 5),
    "CA": (38, 22, 8, 8, 8, 4, 3, 4, 5),
    "GB": (50, 20, 8, 15, 7),
    "DE": (40, 15, 25, 8, 5, 7),
    "FR": (55, 15, 20, 7, 3),
}


def _fmt_phone(code: str, area: str, sub: str, style: int) -> str:
    """Write a phone number the way people in ``code`` write it (style varies)."""
    if code in ("US", "CA"):
        e, ln = sub[:3], sub[3:]
        if style == 0:
            return f"({area}) {e}-{ln}"
        if style == 1:
            return f"{area}-{e}-{ln}"
        if style == 2:
            return f"{area}.{e}.{ln}"
        if style == 3:
            return f"+1 {area} {e} {ln}"
        if style == 4:
            return f"{area}{e}{ln}"
        if style == 5:
            return f"+1 ({area}) {e}-{ln}"
        if style == 6:
            return f"1-{area}-{e}-{ln}"
        if style == 7:
            return f"+1{area}{e}{ln}"
        return f"{area} {e} {ln}"
    if code == "GB":
        national = area + sub
        if area.startswith("7"):
            grouped = f"0{national[:4]} {national[4:]}"
        elif len(area) == 2:
            grouped = f"0{area} {sub[:4]} {sub[4:]}"
        elif len(area) == 3:
            grouped = f"0{area} {sub[:3]} {sub[3:]}"
        else:
            grouped = f"0{area} {sub}"
        if style == 0:
            return grouped
        if style == 1:
            return "+44 " + grouped[1:]
        if style == 2:
            return "+44 (0)" + grouped[1:]
        if style == 3:
            return "0" + national
        return "+44" + national
    if code == "DE":
        if style == 0:
            return f"0{area} {sub}"
        if style == 1:
            return f"0{area}/{sub}"
        if style == 2:
            return f"+49 {area} {sub}"
        if style == 3:
            return f"0{area}-{sub}"
        if style == 4:
            return f"+49 (0){area} {sub}"
        return f"+49{area}{sub}"
    # FR: nine national digits written in pairs.
    n = area + sub
    pairs = f"{n[1:3]} {n[3:5]} {n[5:7]} {n[7:9]}"
    if style == 0:
        return f"0{n[0]} {pairs}"
    if style == 1:
        return "0" + n
    if style == 2:
        return f"+33 {n[0]} {pairs}"
    if style == 3:
        return f"0{n[0]}." + pairs.replace(" ", ".")
    return f"+33 (0){n[0]} {pairs}"


def _canonical_email(local: str, domain: str) -> str:
    """The mailbox an address reaches: case, dots and ``+tags`` ignored."""
    local = local.lower().split("+", 1)[0].replace(".", "")
    return f"{local}@{domain.lower()}"


class _EmailRegistry:
    """Which mailboxes are taken, in a fixed-size bitmap (flat memory, deterministic).

    A false positive only makes the generator pick another address; it never lets
    two people share one.
    """

    __slots__ = ("_bits", "_mask")

    def __init__(self, expected: int) -> None:
        size = 1 << 16
        while size < expected * 48:
            size <<= 1
        self._bits = bytearray(size >> 3)
        self._mask = size - 1

    def claim(self, key: str) -> bool:
        """Mark ``key`` (a canonical address) as in use; False if it may be taken."""
        h = zlib.crc32(key.encode()) & self._mask
        bit = 1 << (h & 7)
        bits = self._bits
        if bits[h >> 3] & bit:
            return False
        bits[h >> 3] |= bit
        return True

    def take(self, key: str) -> None:
        """Mark ``key`` as in use."""
        h = zlib.crc32(key.encode()) & self._mask
        self._bits[h >> 3] |= 1 << (h & 7)


@dataclass(frozen=True, slots=True)
class _Company:
    name: str
    base: str
    legal: str
    domain: str
    industry: str
    employees: int
    country: str


class _CountryModel:
    """A country's tables compiled into pickers."""

    __slots__ = (
        "c",
        "cities",
        "female",
        "legal",
        "male",
        "phone_style",
        "providers",
        "surnames",
        "tail",
    )

    def __init__(self, c: _Country) -> None:
        self.c = c
        self.cities = _Picker([(city, city.weight) for city in c.cities])
        self.male = _Picker(list(c.male))
        self.female = _Picker(list(c.female))
        self.surnames = _Picker(list(c.surnames))
        self.providers = _Picker(list(c.providers))
        self.legal = _Picker(list(c.legal))
        weights = _PHONE_STYLE_WEIGHTS[c.code]
        self.phone_style = _Picker([(i, w) for i, w in enumerate(weights)])
        self.tail = c.tail_style


_MIDS: dict[str, tuple[str, ...]] = {
    "en": ("", "", "", "", "s", "ing", "er", ""),
    "de": ("", "", "", "", "en", "s", "er", "el"),
    "fr": ("", "", "", "", "e", "in", "el", "on"),
}
_TAIL_OFFSET = 300
"""The tail continues the embedded tables, which hold roughly the top 300 names."""


def _tail_name(style: str, u: float) -> str:
    """A synthetic surname from the long tail, at draw ``u``.

    Ranks follow a power law that continues the embedded tables (frequency about
    1/rank), so the most common synthetic names are as rare as the rarest listed
    ones and most are unique even in a million rows.
    """
    heads, tails = _TAIL_SYLLABLES[style]
    mids = _MIDS[style]
    size = len(heads) * len(mids) * len(tails)
    c = _TAIL_OFFSET
    rank = int(c ** (1.0 - u) * (size + c) ** u) - c
    # A fixed scramble so that neighbouring ranks do not share syllables.
    k = (rank * 40503 + 977) % size
    head = heads[k % len(heads)]
    k //= len(heads)
    mid = mids[k % len(mids)]
    tail = tails[k // len(mids)]
    if mid and (head[-1] in "aeiouy" or head[-1] == mid[0] or len(head) > 4):
        mid = ""
    if head[-1] == tail[0]:
        tail = tail[1:] or tail
    return head + mid + tail


_TOWN_SUFFIXES = (
    "ville", "ton", "field", "burg", "wood", "dale", "port", "ford", " Falls", " Springs",
    " Heights", " Park", " Hills", "view",
)  # fmt: skip


def _town_name(u: float, v: float) -> str:
    """A small US town: a name stem and a town suffix."""
    heads = _TAIL_SYLLABLES["en"][0]
    return heads[int(u * len(heads))] + _TOWN_SUFFIXES[int(v * len(_TOWN_SUFFIXES))]


@functools.lru_cache(maxsize=65_536)
def _email_part(name: str, german: bool) -> str:
    """A name as it appears in an email address (lowercase ASCII, no spaces)."""
    return name.translate(_FOLD_GERMAN if german else _FOLD_PLAIN).lower().translate(_FOLD_EMAIL)


def _slug(text: str) -> str:
    return "".join(ch for ch in text.lower().translate(_FOLD_EMAIL) if ch.isalnum())


MAX_COMPANIES = 100_000
"""Most companies a generated customer base has (one per 20 contacts up to
this): the distinct company names the name parts can make run out not far
above it, so a 10M-contact base shares 100,000 employers."""


def company_count(contacts: int) -> int:
    """How many companies :func:`generate` makes for ``contacts`` contacts."""
    return min(MAX_COMPANIES, max(8, contacts // 20))


def _make_companies(seed: int, n: int, models: Sequence[_CountryModel]) -> list[_Company]:
    """``n`` companies spread over the countries, each with a unique name and domain."""
    rng = random.Random(f"crmkit.sample/companies/{seed}")
    r = rng.random
    industries = _Picker(list(zip(_INDUSTRIES, _INDUSTRY_WEIGHTS, strict=True)))
    countries = _Picker([(m, m.c.weight) for m in models])
    names: set[str] = set()
    domains: set[str] = set()
    out: list[_Company] = []
    while len(out) < n:
        m = countries.pick(r())
        industry = industries.pick(r())
        words = _INDUSTRIES[industry]
        word = words[int(r() * len(words))]
        x = r()
        if x < 0.25:
            base = f"{m.surnames.pick(r())} {word}"
        elif x < 0.33 and industry in ("Legal", "Consulting", "Financial Services"):
            base = f"{m.surnames.pick(r())} & {m.surnames.pick(r())}"
        elif x < 0.72:
            base = (
                _BRAND_HEADS[int(r() * len(_BRAND_HEADS))]
                + _BRAND_TAILS[int(r() * len(_BRAND_TAILS))]
            )
            if r() < 0.5:
                base = f"{base} {word}"
        elif x < 0.82:
            base = f"{m.cities.pick(r()).name} {word}"
        else:
            base = f"{_ADJECTIVES[int(r() * len(_ADJECTIVES))]} {_NOUNS[int(r() * len(_NOUNS))]}"
            if r() < 0.6:
                base = f"{base} {word}"
        if base in names:
            continue
        slug = _slug(base.split(" & ")[0] if " & " in base else base)
        tld = "io" if industry == "Software" and r() < 0.3 else m.c.tld
        domain = f"{slug}.{tld}"
        if domain in domains:
            domain = f"{slug}{'hq' if r() < 0.5 else 'group'}.{tld}"
            if domain in domains:
                continue
        legal = m.legal.pick(r()) if r() < 0.65 else ""
        if legal in ("Inc.", "Ltd.", "Corp.") and r() < 0.3:
            name = f"{base}, {legal}"
        else:
            name = f"{base} {legal}" if legal else base
        employees = min(250_000, int(rng.lognormvariate(math.log(40), 1.8)) + 1)
        names.add(base)
        domains.add(domain)
        out.append(_Company(name, base, legal, domain, industry, employees, m.c.code))
    return out


def _company_variant(r: Callable[[], float], co: _Company) -> str:
    """The company's name as someone else typed it."""
    x = r()
    if x < 0.35:
        return co.base
    if x < 0.5:
        return co.name.upper()
    if x < 0.6:
        return co.name.replace(" & ", " and ") if "&" in co.name else co.name.lower()
    if x < 0.75 and co.legal:
        legal = co.legal.rstrip(".")
        return f"{co.base} {legal}" if r() < 0.5 else f"{co.base}, {co.legal}"
    if x < 0.85:
        return (
            co.name.replace("Technologies", "Tech")
            .replace("International", "Intl")
            .replace("Manufacturing", "Mfg")
            .replace("Associates", "Assoc.")
            if r() < 0.5
            else co.base.replace(" ", "")
        )
    return _typo(r, co.name)


_Street = tuple[str, str, str, int, str]
"""(number, prefix, name, type index, unit): the parts of a street line."""


class _Entity:
    """One real person and the records written about them."""

    __slots__ = (
        "alt_address",
        "alt_company",
        "alt_email",
        "alt_phone",
        "birth",
        "buyer",
        "city",
        "company",
        "country",
        "email",
        "email_domain",
        "email_local",
        "emails",
        "female",
        "first",
        "formal",
        "index",
        "key",
        "last",
        "newsletter",
        "phone",
        "phone_style",
        "plan",
        "postcode",
        "remaining",
        "signup",
        "state",
        "street",
        "street_abbr",
        "title",
        "work_email",
    )

    alt_address: tuple[_Street, _City, str, str] | None
    alt_company: _Company | None
    alt_email: str | None
    alt_phone: tuple[str, str] | None
    emails: list[tuple[str, bool]]
    remaining: int
    key: str
    index: int
    country: _CountryModel
    female: bool
    first: str
    formal: str
    last: str
    birth: tuple[int, int, int]
    city: _City
    state: str
    postcode: str
    street: _Street
    street_abbr: bool
    phone: tuple[str, str]
    phone_style: int
    company: _Company | None
    title: int
    email: str
    email_local: str
    email_domain: str
    work_email: bool
    signup: int
    plan: str
    newsletter: bool
    buyer: bool

    def __init__(self, index: int) -> None:
        self.index = index
        self.key = f"E{index:07d}"
        self.alt_address = None
        self.alt_company = None
        self.alt_email = None
        self.alt_phone = None
        self.emails = []
        self.remaining = 0
        self.company = None
        self.title = 0


def _street_text(code: str, st: _Street, abbr: bool, unit_mode: int = 0) -> str:
    """Write a street line; ``abbr`` abbreviates the street type, ``unit_mode``
    writes the unit canonically (0), in another common form (1) or drops it (2)."""
    num, pre, name, kind, unit = st
    if code in ("US", "CA"):
        t = _US_STREET_TYPES[kind][1 if abbr else 0]
        d = ""
        if pre:
            full, short = _US_DIRECTIONS["NSEW".index(pre)]
            d = (short if abbr else full) + " "
        line = f"{num} {d}{name} {t}"
        if unit and unit_mode != 2:
            if unit_mode == 1:
                line += f" #{unit.split(' ', 1)[1]}" if not unit.startswith("#") else f", {unit}"
            else:
                line += f" {unit}" if unit.startswith("#") else f", {unit}"
        return line
    if code == "GB":
        t = _GB_STREET_TYPES[kind][1 if abbr else 0]
        line = f"{num} {name} {t}"
        if pre and unit_mode != 2:
            return f"{pre}/{line}" if unit_mode == 1 else f"Flat {pre}, {line}"
        return line
    if code == "DE":
        suffix = _DE_STREET_SUFFIXES[kind]
        if suffix == "straße" and abbr:
            suffix = "str."
        elif suffix == "straße" and unit_mode == 1:
            suffix = "strasse"
        if name.endswith("straße"):
            return f"{name} {num}"
        return f"{name}{suffix} {num}"
    t = _FR_STREET_TYPES[kind][1 if abbr else 0]
    if unit_mode == 1:
        t = t.capitalize()
    return f"{num}, {t} {name}" if abbr and unit_mode == 1 else f"{num} {t} {name}"


_US_STREET_TYPE_PICK = _Picker(list(zip(range(12), _US_STREET_TYPE_WEIGHTS, strict=True)))
_GB_STREET_TYPE_PICK = _Picker(list(zip(range(12), _GB_STREET_TYPE_WEIGHTS, strict=True)))
_DE_SUFFIX_PICK = _Picker(list(zip(range(6), _DE_STREET_SUFFIX_WEIGHTS, strict=True)))
_FR_STREET_TYPE_PICK = _Picker(list(zip(range(7), _FR_STREET_TYPE_WEIGHTS, strict=True)))
_TITLE_PICK = _Picker([(i, t[2]) for i, t in enumerate(_TITLES)])
_TAG_PICK = _Picker(list(_TAGS))
_HANDLE_WORDS = tuple(
    [
        "sunny",
        "tiger",
        "blue",
        "happy",
        "lucky",
        "star",
        "moon",
        "river",
        "ocean",
        "rocket",
        "pixel",
        "ninja",
        "coffee",
        "jazz",
        "shadow",
        "silver",
        "golden",
        "wild",
        "cosmic",
        "urban",
        "dragon",
        "panda",
        "eagle",
        "maple",
        "storm",
    ]
)


class _ContactGenerator:
    """Streams contact rows; the first record of each person, then their duplicates."""

    def __init__(
        self, n: int, seed: int, duplicate_rate: float, as_of: datetime, stray_rate: float = 1.0
    ) -> None:
        self.n = n
        self.stray_rate = stray_rate
        self.rng = random.Random(f"crmkit.sample/contacts/{seed}")
        self.as_of = as_of
        self.as_of_ord = as_of.date().toordinal()
        self.models = [_CountryModel(c) for c in _COUNTRIES]
        self.countries = _Picker([(m, m.c.weight) for m in self.models])
        self.companies = _make_companies(seed, company_count(n), self.models)
        by_country: dict[str, list[tuple[_Company, float]]] = {}
        for co in self.companies:
            by_country.setdefault(co.country, []).append((co, co.employees**0.5))
        self.company_pick = {code: _Picker(pairs) for code, pairs in by_country.items()}
        self.registry = _EmailRegistry(int(n * 1.4) + 64)
        # Probability that a person has duplicates, so that about `duplicate_rate`
        # of the rows are duplicates: extra records are 1, 2 or 3 (weights below).
        mean_extra = 1 * 0.68 + 2 * 0.22 + 3 * 0.10
        self.p_dup = min(1.0, duplicate_rate / ((1.0 - duplicate_rate) * mean_extra))
        self.entities = 0
        self.duplicate_rows = 0
        self.on_complete: Callable[[_Entity], None] | None = None

    # -- the stream --------------------------------------------------------------

    def rows(self) -> Iterator[tuple[list[str], str]]:
        """Yield ``(row, entity_id)`` for ``n`` rows, in file order."""
        n = self.n
        r = self.rng.random
        window = max(1, min(_DUP_WINDOW, n))
        heap: list[tuple[int, int, _Entity]] = []
        seq = 0
        pos = 0
        on_complete = self.on_complete
        while pos < n:
            rid = f"R{pos + 1:07d}"
            if heap and (heap[0][0] <= pos or n - pos <= len(heap)):
                ent = heapq.heappop(heap)[2]
                row = self._dup_row(ent, rid)
                self.duplicate_rows += 1
                ent.remaining -= 1
                if ent.remaining == 0 and on_complete is not None:
                    on_complete(ent)
            else:
                ent = self._new_entity()
                row = self._primary_row(ent, rid)
                extra = 0
                if r() < self.p_dup:
                    x = r()
                    extra = 1 if x < 0.68 else 2 if x < 0.90 else 3
                    extra = min(extra, n - pos - 1 - len(heap))
                if extra > 0:
                    ent.remaining = extra
                    room = n - 1 - pos
                    for _ in range(extra):
                        span = min(50 if r() < 0.15 else window, room)
                        heapq.heappush(heap, (pos + 1 + int(r() * span), seq, ent))
                        seq += 1
                elif on_complete is not None:
                    on_complete(ent)
            yield row, ent.key
            pos += 1

    # -- people ------------------------------------------------------------------

    def _surname(self, m: _CountryModel) -> str:
        r = self.rng.random
        if r() < m.c.tail_share:
            return _tail_name(m.tail, r())
        return m.surnames.pick(r())

    def _new_entity(self) -> _Entity:
        rng = self.rng
        r = rng.random
        self.entities += 1
        e = _Entity(self.entities)
        m = self.countries.pick(r())
        code = m.c.code
        # About a fifth of Canadians get French names.
        m_names = self.models[4] if code == "CA" and r() < 0.22 else m
        e.country = m
        e.female = r() < 0.51
        first = (m_names.female if e.female else m_names.male).pick(r())
        e.formal = first
        nicks = _NICKNAMES.get(first)
        e.first = nicks[int(r() * len(nicks))] if nicks and r() < 0.1 else first
        e.last = self._surname(m_names)
        age = int(rng.triangular(18, 86, 34))
        month = 1 + int(r() * 12)
        e.birth = (self.as_of.year - age, month, 1 + int(r() * _MONTH_DAYS[month - 1]))
        self._place(e, m)
        e.phone = self._phone(m, e.city)
        e.phone_style = m.phone_style.pick(r())
        if r() < 0.45 and code in self.company_pick:
            e.company = self.company_pick[code].pick(r())
            e.title = _TITLE_PICK.pick(r())
        e.work_email = e.company is not None and r() < 0.55
        local, domain = self._new_email(e, e.work_email, e.company, None)
        e.email_local, e.email_domain = local, domain
        e.email = f"{local}@{domain}"
        span = 365 * 4
        e.signup = self.as_of_ord - int(span * r() ** 1.4)
        e.buyer = r() < 0.62
        x = r()
        if e.buyer:
            b2b = e.company is not None
            e.plan = (
                "Free" if x < 0.15 else "Starter" if x < 0.42 else "Pro" if x < 0.72
                else "Business" if x < (0.9 if b2b else 0.95) else "Enterprise"
            )  # fmt: skip
        else:
            e.plan = "Free" if x < 0.5 else "" if x < 0.85 else "Starter"
        e.newsletter = r() < (0.6 if e.buyer else 0.45)
        return e

    def _place(self, e: _Entity, m: _CountryModel) -> None:
        """Choose a city, street and postcode for ``e`` in country ``m``."""
        r = self.rng.random
        code = m.c.code
        city = m.cities.pick(r())
        if code == "US" and r() < 0.3:
            # Small towns: a long tail of places in a real state.
            town = _town_name(r(), r())
            city = _City(town, city.state, city.postcode, city.areas, 0.0)
        e.city = city
        e.state = city.state
        e.postcode = self._postcode(city)
        e.street = self._street(code)
        e.street_abbr = r() < 0.55

    def _postcode(self, city: _City) -> str:
        r = self.rng.random
        spec = city.postcode
        kind = spec[0]
        if kind == "zip":
            prefix = spec[1 + int(r() * (len(spec) - 1))]
            return f"{prefix}{int(r() * 100):02d}"
        if kind == "fsa":
            L = _CA_LETTERS
            return (
                f"{spec[1]}{1 + int(r() * 9)}{L[int(r() * 20)]} "
                f"{int(r() * 10)}{L[int(r() * 20)]}{int(r() * 10)}"
            )
        if kind == "uk":
            area = spec[1 + int(r() * (len(spec) - 1))]
            district = 1 + int(r() * (20 if len(area) == 2 or area in "NEW" else 30))
            return (
                f"{area}{district} {int(r() * 10)}"
                f"{_GB_LETTERS[int(r() * 20)]}{_GB_LETTERS[int(r() * 20)]}"
            )
        if kind == "de":
            lo, hi = int(spec[1]), int(spec[2])
            return f"{lo + int(r() * (hi - lo + 1)):02d}{int(r() * 1000):03d}"
        return spec[1 + int(r() * (len(spec) - 1))]

    def _street(self, code: str) -> _Street:
        r = self.rng.random
        if code in ("US", "CA"):
            num = str(int(10 ** (1 + r() * 3.3)))
            pre = "NSEW"[int(r() * 4)] if r() < 0.1 else ""
            name = _US_STREETS[int(r() * len(_US_STREETS))]
            unit = ""
            if r() < 0.18:
                kind = _UNITS[int(r() * len(_UNITS))]
                val = str(1 + int(r() * 40))
                if r() < 0.3:
                    val += "ABCD"[int(r() * 4)]
                unit = f"{kind} {val}" if kind != "#" else f"#{val}"
            return (num, pre, name, _US_STREET_TYPE_PICK.pick(r()), unit)
        if code == "GB":
            num = str(1 + int(r() ** 2 * 250))
            flat = str(1 + int(r() * 12)) if r() < 0.15 else ""
            name = _GB_STREETS[int(r() * len(_GB_STREETS))]
            return (num, flat, name, _GB_STREET_TYPE_PICK.pick(r()), "")
        if code == "DE":
            num = str(1 + int(r() ** 2 * 180))
            if r() < 0.08:
                num += "abc"[int(r() * 3)]
            name = _DE_STREETS[int(r() * len(_DE_STREETS))]
            return (num, "", name, _DE_SUFFIX_PICK.pick(r()), "")
        num = str(1 + int(r() ** 2 * 150))
        if r() < 0.05:
            num += " bis"
        name = _FR_STREETS[int(r() * len(_FR_STREETS))]
        return (num, "", name, _FR_STREET_TYPE_PICK.pick(r()), "")

    def _phone(self, m: _CountryModel, city: _City) -> tuple[str, str]:
        r = self.rng.random
        code = m.c.code
        if code in ("US", "CA"):
            area = city.areas[int(r() * len(city.areas))]
            return area, f"{2 + int(r() * 8)}{int(r() * 100):02d}{int(r() * 10000):04d}"
        if m.c.mobile and r() < 0.5:
            area = m.c.mobile[int(r() * len(m.c.mobile))]
            length = {"GB": 10, "DE": 11, "FR": 9}[code] - len(area)
        else:
            area = city.areas[int(r() * len(city.areas))]
            length = {"GB": 10, "DE": 10 if len(area) == 2 else 9, "FR": 9}[code] - len(area)
        width = length - 1
        return area, f"{2 + int(r() * 8)}{int(r() * 10**width):0{width}d}"

    # -- email addresses -----------------------------------------------------------

    def _new_email(
        self, e: _Entity, work: bool, company: _Company | None, avoid: str | None
    ) -> tuple[str, str]:
        """A new address for ``e``: at ``company`` if ``work``, else at a provider of
        their country (not ``avoid``). Registered as taken."""
        r = self.rng.random
        m = e.country
        if work and company is not None:
            domain = company.domain
        else:
            domain = m.providers.pick(r())
            if domain == avoid:
                domain = m.providers.pick(r())
        first = e.first if r() < 0.3 else e.formal
        f = _email_part(first, m.c.code == "DE")
        ln = _email_part(e.last, m.c.code == "DE")
        year = e.birth[0]
        x = r()
        if work:
            local = (
                f"{f}.{ln}" if x < 0.45 else f"{f[0]}{ln}" if x < 0.7 else f if x < 0.8
                else f"{f}_{ln}" if x < 0.85 else f"{f}.{ln[0]}" if x < 0.9
                else f"{ln}{f[0]}" if x < 0.95 else f"{f}{ln}"
            )  # fmt: skip
        elif x < 0.07:
            w = _HANDLE_WORDS
            local = f"{w[int(r() * len(w))]}{w[int(r() * len(w))]}{int(r() * 100)}"
        else:
            y = r()
            nn = (
                f"{year % 100:02d}" if y < 0.4 else str(year) if y < 0.55
                else str(1 + int(r() * 99)) if y < 0.85 else str(100 + int(r() * 900))
            )  # fmt: skip
            local = (
                f"{f}.{ln}" if x < 0.33 else f"{f}{ln}" if x < 0.47 else f"{f}.{ln}{nn}" if x < 0.55
                else f"{f}{ln}{nn}" if x < 0.63 else f"{f[0]}{ln}" if x < 0.73
                else f"{f[0]}{ln}{nn}" if x < 0.78 else f"{f}_{ln}" if x < 0.82
                else f"{f}{nn}" if x < 0.88 else f"{ln}.{f}" if x < 0.91
                else f"{f}{ln[0]}" if x < 0.95 else f"{f}.{ln[0]}{nn}"
            )  # fmt: skip
        reg = self.registry
        candidate = local
        for attempt in range(12):
            if reg.claim(_canonical_email(candidate, domain)):
                return candidate, domain
            if work and attempt == 0:
                candidate = f"{f}.{ln}"
            elif work and attempt == 1:
                candidate = f"{f}{ln[0]}"
            else:
                sep = "." if r() < 0.3 and "." not in candidate else ""
                candidate = f"{local}{sep}{1 + int(r() * (99 if attempt < 6 else 9999))}"
        candidate = f"{local}.{e.index}x"
        reg.take(_canonical_email(candidate, domain))
        return candidate, domain

    # -- rows ------------------------------------------------------------------------

    def _signup_text(self, ordinal: int) -> str:
        return date.fromordinal(ordinal).isoformat()

    def _tags(self) -> str:
        r = self.rng.random
        x = r()
        count = 0 if x < 0.35 else 1 if x < 0.7 else 2 if x < 0.9 else 3
        tags: list[str] = []
        for _ in range(count):
            tag = _TAG_PICK.pick(r())
            if tag not in tags:
                tags.append(tag)
        return ";".join(tags)

    def _primary_row(self, e: _Entity, rid: str) -> list[str]:
        """The person's first record: complete-ish, lightly noisy."""
        r = self.rng.random
        m = e.country
        code = m.c.code
        first, last = e.first, e.last
        x = r()
        if x < 0.02:
            first, last = first.lower(), last.lower()
        elif x < 0.035:
            first, last = first.upper(), last.upper()
        elif x < 0.045:
            last = _typo(r, last)
        elif x < 0.055:
            first = _whitespace(r, first)
        email = e.email if r() < 0.96 else ""
        if email:
            e.emails.append((email, True))
        phone = _fmt_phone(code, e.phone[0], e.phone[1], e.phone_style) if r() < 0.7 else ""
        street = city = state = postcode = ""
        x = r()
        if x < 0.85:
            city, state, postcode = e.city.name, e.state, e.postcode
            if x < 0.72:
                street = _street_text(code, e.street, e.street_abbr)
            if (code == "GB" and r() < 0.6) or (code == "FR" and r() < 0.5):
                state = ""
        elif x < 0.9:
            state = e.state
        x = r()
        country = m.c.name if x < 0.93 else "" if x < 0.96 else m.c.variants[0]
        y, mo, d = e.birth
        birth = f"{y:04d}-{mo:02d}-{d:02d}" if r() < 0.4 else ""
        company = title = ""
        if e.company is not None:
            if r() < 0.95:
                company = e.company.name
            if r() < 0.8:
                title = _TITLES[e.title][0]
        return [
            rid, first, last, email, phone, company, title, street, city, state, postcode,
            country, birth, self._signup_text(e.signup), self._tags(), e.plan,
            "yes" if e.newsletter else "no",
        ]  # fmt: skip

    def _dup_row(self, e: _Entity, rid: str) -> list[str]:
        """Another record of ``e``, from a source profile and with the usual mistakes."""
        rng = self.rng
        r = rng.random
        m = e.country
        code = m.c.code
        x = r()
        # Source profiles: 0 CRM entry, 1 web form, 2 event scan, 3 store/POS, 4 bulk import.
        prof = 0 if x < 0.45 else 1 if x < 0.70 else 2 if x < 0.82 else 3 if x < 0.94 else 4
        first, last = self._dup_name(e)
        x = r()
        if (prof == 4 and x < 0.5) or x < 0.05:
            first, last = first.upper(), last.upper()
        elif x < 0.09:
            first, last = first.lower(), last.lower()
        x = r()
        if x < 0.03:
            first = _whitespace(r, first)
        elif x < 0.06:
            last = _whitespace(r, last)

        email, deliverable = ("", False) if prof == 3 and r() < 0.4 else self._dup_email(e)
        # Whether the row still carries one of the person's own contact points
        # (their first email, phone or address, possibly misspelt).
        contact = bool(email) and email != e.alt_email

        phone = ""
        if not (prof in (1, 2) and r() < 0.7):
            area, sub = e.phone
            style = e.phone_style
            x = r()
            if x < 0.68:
                if x >= 0.40 or prof == 4:
                    style = m.phone_style.pick(r())
                phone = _fmt_phone(code, area, sub, style)
                contact = True
            elif x < 0.73:
                phone = _fmt_phone(code, area, _digit_typo(r, sub), m.phone_style.pick(r()))
                contact = True
            elif x < 0.80:
                if e.alt_phone is None:
                    e.alt_phone = self._phone(m, e.city)
                area, sub = e.alt_phone
                phone = _fmt_phone(code, area, sub, m.phone_style.pick(r()))

        street = city = state = postcode = ""
        if prof in (1, 2):
            if r() < 0.3:
                city, state = e.city.name, e.state
        else:
            st, cty, st_state, pc = e.street, e.city, e.state, e.postcode
            x = r()
            if 0.60 <= x < 0.74:
                if e.alt_address is None:
                    new_city = cty if r() < 0.5 else m.cities.pick(r())
                    e.alt_address = (
                        self._street(code), new_city, new_city.state, self._postcode(new_city),
                    )  # fmt: skip
                st, cty, st_state, pc = e.alt_address
            elif x < 0.93:
                contact = True
            if x < 0.93:
                city, state, postcode = cty.name, st_state, pc
                if x < 0.79:
                    abbr = e.street_abbr if r() < 0.7 else not e.street_abbr
                    unit_mode = 0 if r() < 0.7 else 1 if r() < 0.5 else 2
                    street = _street_text(code, st, abbr, unit_mode)
                    if x >= 0.74:
                        street = _typo(r, street)
                city, state, postcode = self._dup_place(code, cty, city, state, postcode)

        if not contact and self.stray_rate < 1.0 and r() >= self.stray_rate:
            # Give the row back one contact point of the person, as its source would
            # have it: a till asks for a phone number, the other sources an email.
            if prof == 3:
                phone = _fmt_phone(code, e.phone[0], e.phone[1], m.phone_style.pick(r()))
            else:
                email, deliverable = e.email, True
        if email:
            e.emails.append((email.strip(), deliverable))

        x = r()
        country = m.c.name if x < 0.65 else "" if x >= 0.88 else (
            m.c.variants[int(r() * len(m.c.variants))]
        )  # fmt: skip

        birth = ""
        show = 0.45 if prof in (0, 4) else 0.2 if prof == 3 else 0.03
        if r() < show:
            birth = self._dup_birth(code, e.birth)

        company = title = ""
        if e.company is not None and not (prof == 3 and r() < 0.8):
            co = e.company
            t = e.title
            x = r()
            if 0.72 <= x < 0.80:
                if e.alt_company is None:
                    e.alt_company = self.company_pick[code].pick(r())
                co = e.alt_company
                t = (t + 1 + int(r() * 3)) % len(_TITLES)
            if x < 0.58 or 0.72 <= x < 0.80:
                company = co.name
            elif x < 0.72:
                company = _company_variant(r, co)
            y = r()
            if y < 0.5:
                title = _TITLES[t][0]
            elif y < 0.65:
                alts = _TITLES[t][1]
                title = alts[int(r() * len(alts))]

        signup = e.signup + int((self.as_of_ord - e.signup) * r())
        x = r()
        plan = e.plan if x < 0.7 else "" if x < 0.85 else _PLANS[int(r() * len(_PLANS))]
        x = r()
        newsletter = e.newsletter if x < 0.8 else (not e.newsletter) if x < 0.92 else None
        return [
            rid, first, last, email, phone, company, title, street, city, state, postcode,
            country, birth, self._signup_text(signup), self._tags(), plan,
            "" if newsletter is None else "yes" if newsletter else "no",
        ]  # fmt: skip

    def _dup_name(self, e: _Entity) -> tuple[str, str]:
        r = self.rng.random
        first = e.first if r() < 0.6 else e.formal
        last = e.last
        x = r()
        if x < 0.50:
            pass
        elif x < 0.64:
            nicks = _NICKNAMES.get(first)
            if nicks:
                first = nicks[int(r() * len(nicks))]
            else:
                formals = _FORMAL_OF.get(first)
                if formals:
                    first = formals[int(r() * len(formals))]
        elif x < 0.67:
            first = first[0] + ("." if r() < 0.6 else "")
        elif x < 0.69:
            first = f"{first} {'ABCDEFGHJKLMNPRSTW'[int(r() * 18)]}."
        elif x < 0.78:
            last = _typo(r, last)
        elif x < 0.85:
            first = _typo(r, first)
        elif x < 0.88:
            first, last = last, first
        elif x < 0.92:
            if e.female and self.as_of.year - e.birth[0] >= 22:
                new = self._surname(e.country)
                y = r()
                last = new if y < 0.75 else f"{last}-{new}" if y < 0.9 else f"{new}-{last}"
            else:
                last = _typo(r, last)
        elif x < 0.94:
            first, last = _typo(r, first), _typo(r, last)
        elif x < 0.95:
            first, last = f"{first} {last}", ""
        elif x < 0.96:
            first, last = "", f"{last}, {first}"
        elif x < 0.98:
            first = ""
        else:
            last = self._surname_spelling(last)
        if not (first + last).isascii() and r() < 0.5:
            fold = _FOLD_GERMAN if e.country.c.code == "DE" and r() < 0.5 else _FOLD_PLAIN
            first, last = first.translate(fold), last.translate(fold)
        return first, last

    def _surname_spelling(self, last: str) -> str:
        """Another spelling people use for the same surname (O'Brien/OBrien, McDonald/Mcdonald)."""
        r = self.rng.random
        if "'" in last:
            return last.replace("'", "" if r() < 0.6 else " ")
        if last.startswith(("Mc", "Mac")) and len(last) > 3:
            cut = 2 if last.startswith("Mc") else 3
            return last[:cut] + (" " + last[cut:] if r() < 0.4 else last[cut:].lower())
        if last.startswith(("De", "Le")) and len(last) > 3 and last[2].isupper():
            return last[:2] + " " + last[2:]
        if "-" in last:
            return last.replace("-", " ")
        return _typo(r, last)

    def _dup_email(self, e: _Entity) -> tuple[str, bool]:
        """The person's email as another record has it, and whether mail to it arrives."""
        r = self.rng.random
        local, domain = e.email_local, e.email_domain
        x = r()
        if x < 0.42:
            return e.email, True
        if x < 0.50:
            y = r()
            if y < 0.4:
                return f"{local.title()}@{domain}", True
            if y < 0.7:
                return f"{local}@{domain.capitalize()}", True
            return e.email.upper() if y < 0.85 else f"{local.capitalize()}@{domain}", True
        if x < 0.54:
            if domain in _DOT_INSENSITIVE:
                if "." in local:
                    return f"{local.replace('.', '')}@{domain}", True
                if len(local) > 3:
                    cut = 1 + int(r() * (len(local) - 2))
                    return f"{local[:cut]}.{local[cut:]}@{domain}", True
            return e.email, True
        if x < 0.58:
            if domain in _PLUS_PROVIDERS:
                return f"{local}+{_PLUS_TAGS[int(r() * len(_PLUS_TAGS))]}@{domain}", True
            return e.email, True
        if x < 0.63:
            if x < 0.61:
                typos = _PROVIDER_TYPOS.get(domain)
                if typos:
                    bad = typos[int(r() * len(typos))]
                else:
                    label, _, rest = domain.partition(".")
                    bad = f"{_typo(r, label)}.{rest}"
                bad_local = local
            else:
                bad, bad_local = domain, _typo(r, local)
            if (bad_local == local and bad == domain) or not self.registry.claim(
                _canonical_email(bad_local, bad)
            ):
                return e.email, True
            return f"{bad_local}@{bad}", False
        if x < 0.86:
            if e.alt_email is None or r() < 0.3:
                work = e.company is not None and not e.work_email and r() < 0.5
                new_local, new_domain = self._new_email(e, work, e.company, domain)
                e.alt_email = f"{new_local}@{new_domain}"
            return e.alt_email, True
        if x < 0.97:
            return "", False
        return _whitespace(r, e.email), True

    def _dup_place(
        self, code: str, city_model: _City, city: str, state: str, postcode: str
    ) -> tuple[str, str, str]:
        """City, state and postcode as another record writes them."""
        r = self.rng.random
        x = r()
        if x < 0.08 and city_model.alt:
            city = city_model.alt[int(r() * len(city_model.alt))]
        elif x < 0.11:
            city = _typo(r, city)
        elif x < 0.14:
            city = city.upper() if r() < 0.5 else city.lower()
        x = r()
        if code in ("US", "CA"):
            if x < 0.08:
                state = _US_STATE_NAMES.get(state, state)
            elif x < 0.11:
                state = state.lower()
        elif x < 0.4:
            state = ""
        if x >= 0.9:
            state = ""
        x = r()
        if x < 0.05 and postcode:
            if code == "US":
                if postcode.startswith("0") and r() < 0.6:
                    postcode = postcode.lstrip("0")
                else:
                    postcode = f"{postcode}-{int(r() * 10000):04d}"
            elif code in ("CA", "GB"):
                postcode = postcode.replace(" ", "") if r() < 0.6 else postcode.lower()
            elif postcode.startswith("0"):
                postcode = postcode[1:]
            else:
                postcode = _digit_typo(r, postcode)
        elif x < 0.07 and postcode:
            postcode = (
                _digit_typo(r, postcode.replace(" ", "")) if code in ("US", "DE", "FR") else ""
            )
        return city, state, postcode

    def _dup_birth(self, code: str, birth: tuple[int, int, int]) -> str:
        r = self.rng.random
        y, mo, d = birth
        x = r()
        if x < 0.08 and d <= 12 and d != mo:
            mo, d = d, mo
        elif x < 0.10:
            y += 1 if r() < 0.5 else -1
        x = r()
        if x < 0.04:
            if code == "US":
                return f"{mo}/{d}/{y}" if r() < 0.5 else f"{mo:02d}/{d:02d}/{y}"
            if code == "DE":
                return f"{d:02d}.{mo:02d}.{y}"
            return f"{d:02d}/{mo:02d}/{y}"
        return f"{y:04d}-{mo:02d}-{d:02d}"


# ---------------------------------------------------------------------------
# Interactions
# ---------------------------------------------------------------------------

_DAY = 86_400
_YEAR = 365.2425 * _DAY
_HOUR_PICK = _Picker(
    list(
        zip(
            range(24),
            (1, 0.6, 0.4, 0.3, 0.3, 0.5, 1, 2, 4, 6, 7, 7, 8, 8, 7, 7, 7, 7, 8, 9, 9, 7, 4, 2),
            strict=True,
        )
    )
)
_CATEGORIES = (
    "Apparel", "Electronics", "Home & Garden", "Books", "Beauty", "Sports & Outdoors", "Toys",
    "Grocery", "Subscription renewal", "Gift card", "Accessories", "Software license",
)  # fmt: skip
_PURCHASE_CHANNELS = _Picker([("web", 60.0), ("store", 20.0), ("app", 15.0), ("phone", 5.0)])
_TICKET_SUBJECTS = (
    "Order not received", "Refund request", "Damaged item", "Login problem", "Billing question",
    "Change of address", "Cancel subscription", "Wrong size", "Invoice copy", "Promo code not working",
)  # fmt: skip
_TICKET_CHANNELS = ("email", "chat", "phone", "web")
_CALL_SUBJECTS = (
    "Discovery call", "Follow-up", "Pricing question", "Renewal discussion", "Onboarding",
    "Check-in", "Upsell conversation",
)  # fmt: skip
_MEETING_SUBJECTS = (
    "Product demo",
    "Quarterly review",
    "Kickoff",
    "Contract negotiation",
    "Workshop",
)
_FORM_SUBJECTS = (
    "Newsletter signup", "Account registration", "Demo request", "Contact us",
    "Webinar registration", "Download: pricing guide", "Event registration",
)  # fmt: skip
_NEWSLETTER_TOPICS = (
    "what's new", "tips from our team", "customer stories", "product updates", "events near you",
    "our favourite picks", "behind the scenes",
)  # fmt: skip
_PROMOS = (
    "Spring sale: 20% off", "Summer deals are here", "Back to school savings", "Black Friday preview",
    "Holiday gift guide", "New year, new gear", "Members-only offer", "Last chance: free shipping",
)  # fmt: skip
_FX = {"USD": 1.0, "CAD": 1.35, "GBP": 0.8, "EUR": 0.92}


@functools.lru_cache(maxsize=4096)
def _iso_day(day: int) -> str:
    return time.strftime("%Y-%m-%dT", time.gmtime(day * _DAY))


def _iso(ts: float) -> str:
    """ISO-8601 UTC, to the second."""
    t = int(ts)
    day, sec = divmod(t, _DAY)
    return f"{_iso_day(day)}{sec // 3600:02d}:{sec // 60 % 60:02d}:{sec % 60:02d}Z"


class _InteractionWriter:
    """Writes each person's timeline when their last record has been written."""

    def __init__(self, out: Callable[[bytes], object], seed: int, as_of: datetime, years: float):
        self.rng = random.Random(f"crmkit.sample/interactions/{seed}")
        self.out = out
        self.end = as_of.timestamp()
        self.start = self.end - years * _YEAR
        self.count = 0
        self.orders = 0
        self.tickets = 0
        self.encoder = msgspec.json.Encoder()
        self.campaigns = self._calendar()

    def _calendar(self) -> list[tuple[float, str, str]]:
        """Newsletters every other Tuesday and a monthly promotion, over the window."""
        out: list[tuple[float, str, str]] = []
        day = math.floor(self.start / _DAY) * _DAY
        # 1970-01-01 was a Thursday: Tuesday is weekday index 5 days later.
        while (day // _DAY) % 7 != 5:
            day += _DAY
        i = 0
        ts = day + 15 * 3600
        while ts < self.end:
            d = time.gmtime(ts)
            if i % 2 == 0:
                topic = _NEWSLETTER_TOPICS[(i // 2) % len(_NEWSLETTER_TOPICS)]
                subject = f"{time.strftime('%B', d)} newsletter: {topic}"
                out.append((ts, subject, time.strftime("newsletter-%Y-%m-%d", d)))
            if d.tm_mday <= 7:
                promo = _PROMOS[(d.tm_mon - 1) * len(_PROMOS) // 12]
                promo_ts = ts + 2 * _DAY + 2 * 3600
                out.append(
                    (promo_ts, promo, time.strftime("promo-%Y-%m-%d", time.gmtime(promo_ts)))
                )
            ts += 7 * _DAY
            i += 1
        return out

    def _when(self, lo: float, hi: float) -> float:
        """A time between ``lo`` and ``hi``, at a plausible hour of the day."""
        r = self.rng.random
        t = lo + r() * (hi - lo)
        day = t - t % _DAY
        shaped = day + _HOUR_PICK.pick(r()) * 3600 + r() * 3600
        return shaped if lo <= shaped < hi else t

    def write(self, e: _Entity) -> None:
        """Generate and write the timeline of ``e``."""
        seen: dict[str, bool] = {}
        for email, ok in e.emails:
            seen[email] = seen.get(email, False) or ok
        if not seen:
            return
        rng = self.rng
        r = rng.random
        emails = list(seen)
        deliverable = [em for em, ok in seen.items() if ok]
        # 719_163 is the proleptic ordinal of 1970-01-01.
        signup_ts = (e.signup - 719_163) * _DAY + r() * _DAY
        start = max(self.start, signup_ts)
        end = self.end
        if start >= end:
            return
        churned = False
        if end - start > 150 * _DAY and r() < (0.3 if e.buyer else 0.25):
            churned = True
            end = start + r() * (end - 90 * _DAY - start)
        events: list[tuple[float, dict[str, object]]] = []

        def pick_email(deliverable_only: bool = False) -> str | None:
            pool = deliverable if deliverable_only else emails
            if not pool:
                return None
            return pool[0] if len(pool) == 1 or r() < 0.65 else pool[1 + int(r() * (len(pool) - 1))]

        def add(ts: float, kind: str, channel: str, subject: str, **extra: object) -> None:
            if not start <= ts < end:
                return
            email = pick_email(kind in ("email_open", "email_click"))
            if email is None:
                return
            body: dict[str, object] = {
                "email": email, "kind": kind, "occurred_at": _iso(ts), "channel": channel,
                "subject": subject,
            }  # fmt: skip
            body.update(extra)
            events.append((ts, body))

        satisfaction = rng.betavariate(2, 3) if churned else rng.betavariate(5, 2)

        def feedback(ts: float, subject: str) -> None:
            if ts < end:
                score = round(10 * satisfaction + (r() - 0.5) * 3)
                add(ts, "feedback", "survey" if r() < 0.7 else "email", subject,
                    score=min(10, max(0, score)))  # fmt: skip

        if signup_ts >= self.start:
            add(signup_ts, "form", "web", _FORM_SUBJECTS[int(r() * len(_FORM_SUBJECTS))])
        years = (end - start) / _YEAR
        if not e.buyer:
            for _ in range(_poisson(r, 0.6 * years)):
                add(self._when(start, end), "form", "web",
                    _FORM_SUBJECTS[int(r() * len(_FORM_SUBJECTS))])  # fmt: skip

        currency = e.country.c.currency
        fx = _FX[currency]
        if e.buyer:
            # Pareto: most buyers buy once or twice a year, a few buy every week.
            rate = min(150.0, 0.7 * rng.paretovariate(1.3))
            count = max(1, _poisson(r, rate * years))
            basket = rng.lognormvariate(math.log(55), 0.6)
            channel = _PURCHASE_CHANNELS.pick(r())
            ticket_rate = 0.15 if churned else 0.05
            for _ in range(count):
                ts = self._when(start, end)
                self.orders += 1
                amount = round(basket * rng.lognormvariate(0, 0.45) * fx, 2)
                add(ts, "purchase", channel if r() < 0.8 else _PURCHASE_CHANNELS.pick(r()),
                    _CATEGORIES[int(r() * len(_CATEGORIES))], amount=amount,
                    currency=currency, order_id=f"O{self.orders:08d}")  # fmt: skip
                if r() < ticket_rate:
                    t = ts + (1 + r() * 20) * _DAY
                    if t < end:
                        self.tickets += 1
                        add(t, "ticket", _TICKET_CHANNELS[int(r() * 4)],
                            _TICKET_SUBJECTS[int(r() * len(_TICKET_SUBJECTS))],
                            ticket_id=f"T{self.tickets:07d}")  # fmt: skip
                        if r() < 0.3:
                            feedback(t + (1 + r() * 3) * _DAY, "Support satisfaction survey")
                if r() < 0.1:
                    feedback(ts + (2 + r() * 8) * _DAY, "Post-purchase survey")
        for _ in range(_poisson(r, 0.15 * years)):
            self.tickets += 1
            add(self._when(start, end), "ticket", _TICKET_CHANNELS[int(r() * 4)],
                _TICKET_SUBJECTS[int(r() * len(_TICKET_SUBJECTS))],
                ticket_id=f"T{self.tickets:07d}")  # fmt: skip
        if e.company is not None:
            calls = _poisson(r, (1.5 if not e.buyer else 0.8) * years)
            for _ in range(calls):
                add(self._when(start, end), "call", "phone",
                    _CALL_SUBJECTS[int(r() * len(_CALL_SUBJECTS))],
                    duration_min=1 + int(rng.expovariate(1 / 12)))  # fmt: skip
            for _ in range(_poisson(r, 0.5 * years)):
                add(self._when(start, end), "meeting", "video" if r() < 0.7 else "in_person",
                    _MEETING_SUBJECTS[int(r() * len(_MEETING_SUBJECTS))],
                    duration_min=15 * (1 + int(r() * 4)))  # fmt: skip
        if e.newsletter and deliverable:
            p_open = rng.betavariate(1.2, 4.0)
            p_click = 0.1 + 0.3 * r()
            lo = bisect.bisect_left(self.campaigns, (start,))
            for ts, subject, campaign in self.campaigns[lo:]:
                if ts >= end:
                    break
                if r() < p_open:
                    opened = ts + min(7 * _DAY, rng.expovariate(1 / 14_400))
                    if opened >= end:
                        continue
                    add(opened, "email_open", "email", subject, campaign=campaign)
                    if r() < p_click:
                        add(opened + 5 + r() * 600, "email_click", "email", subject,
                            campaign=campaign)  # fmt: skip
        events.sort(key=lambda item: item[0])
        encode = self.encoder.encode
        chunks: list[bytes] = []
        for _, body in events:
            self.count += 1
            chunks.append(encode({"id": f"I{self.count:08d}", **body}))
        if chunks:
            self.out(b"\n".join(chunks) + b"\n")


# ---------------------------------------------------------------------------
# Public API
# ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SampleInfo:
    """What :func:`generate` wrote: the paths and how many of each thing.

    ``companies_path`` and ``interactions_path`` are ``None`` when those files
    were not requested.
    """

    out_dir: Path
    contacts_path: Path
    truth_path: Path
    companies_path: Path | None
    interactions_path: Path | None
    contacts: int
    """Rows in ``contacts.csv``."""
    entities: int
    """Distinct people (entity ids) behind the rows."""
    duplicate_rows: int
    """Rows that are not a person's first record (``contacts - entities``)."""
    companies: int
    """Rows in ``companies.csv`` (0 when not written)."""
    interactions: int
    """Lines in ``interactions.jsonl`` (0 when not written)."""


def _check(
    n: int, duplicate_rate: float, as_of: datetime | None, stray_rate: float = 1.0
) -> datetime:
    if n < 0:
        raise ValueError("contacts must be zero or more")
    if not 0.0 <= stray_rate <= 1.0:
        raise ValueError("stray_rate must be between 0 and 1")
    if not 0.0 <= duplicate_rate <= MAX_DUPLICATE_RATE:
        raise ValueError(f"duplicate_rate must be between 0 and {MAX_DUPLICATE_RATE}")
    if as_of is None:
        return DEFAULT_AS_OF
    if as_of.tzinfo is None:
        return as_of.replace(tzinfo=UTC)
    return as_of.astimezone(UTC)


def iter_contacts(
    n: int,
    *,
    seed: int = 42,
    duplicate_rate: float = 0.29,
    as_of: datetime | None = None,
    stray_rate: float = 1.0,
) -> Iterator[tuple[list[str], str]]:
    """Stream ``n`` contact rows with their ground truth, without writing anything.

    Yields ``(row, entity_id)`` pairs in file order; each row is a list of strings
    in :data:`CONTACT_HEADER` order and ``entity_id`` (``E0000001``…) names the
    person it belongs to. The rows are exactly those :func:`generate` writes to
    ``contacts.csv`` for the same arguments. ``as_of`` defaults to
    :data:`DEFAULT_AS_OF`; a naive datetime is taken as UTC. ``stray_rate`` is
    described under :func:`generate`.

    Raises:
        ValueError: ``n`` is negative, ``duplicate_rate`` is outside
            ``[0, MAX_DUPLICATE_RATE]`` or ``stray_rate`` outside ``[0, 1]``.
    """
    when = _check(n, duplicate_rate, as_of, stray_rate)
    return _ContactGenerator(n, seed, duplicate_rate, when, stray_rate).rows()


def generate_contacts_rows(
    n: int,
    *,
    seed: int = 42,
    duplicate_rate: float = 0.29,
    as_of: datetime | None = None,
    stray_rate: float = 1.0,
) -> Iterator[list[str]]:
    """Stream ``n`` contact rows (lists of strings in :data:`CONTACT_HEADER` order).

    The same rows as :func:`iter_contacts`, without the entity ids: the fast path
    for benches that write very large files, e.g.::

        with open("contacts.csv", "w", newline="", encoding="utf-8") as f:
            w = csv.writer(f, lineterminator="\\n")
            w.writerow(CONTACT_HEADER)
            w.writerows(generate_contacts_rows(1_000_000, seed=7))
    """
    rows = iter_contacts(
        n, seed=seed, duplicate_rate=duplicate_rate, as_of=as_of, stray_rate=stray_rate
    )
    for row, _ in rows:
        yield row


def generate(
    out_dir: Path,
    *,
    contacts: int = 3000,
    seed: int = 42,
    years: float = 1.0,
    as_of: datetime | None = None,
    duplicate_rate: float = 0.29,
    with_interactions: bool = True,
    with_companies: bool = True,
    stray_rate: float = 1.0,
) -> SampleInfo:
    """Write a sample customer base with its ground truth to ``out_dir``.

    Files (UTF-8, ``\\n`` line endings; ``out_dir`` is created if missing and
    existing files are overwritten):

    - ``contacts.csv``: :data:`CONTACT_HEADER`, ``contacts`` rows. ``Record ID`` is
      unique (``R0000001``…); ``Tags`` are ``;``-separated; ``Plan`` is one of
      Free/Starter/Pro/Business/Enterprise or empty; ``Newsletter`` is ``yes``,
      ``no`` or empty; ``Signed Up`` is an ISO date. About ``duplicate_rate`` of
      the rows are further records of a person who already has a row.
    - ``truth.csv``: :data:`TRUTH_HEADER`, the person (``E0000001``…) behind every
      row; a person has 1 to 4 rows.
    - ``companies.csv`` (when ``with_companies``): :data:`COMPANY_HEADER`.
    - ``interactions.jsonl`` (when ``with_interactions``): one JSON object per
      line with ``id`` (``I00000001``…), ``email`` (one of that person's emails
      as written in some contact row, stripped of whitespace), ``kind`` (see
      :data:`INTERACTION_KINDS`), ``occurred_at`` (ISO-8601 UTC, within
      ``years`` before ``as_of``), ``channel`` and ``subject``; purchases add
      ``amount``, ``currency`` and ``order_id``, tickets ``ticket_id``, feedback
      ``score`` (0-10), calls and meetings ``duration_min``, email opens and
      clicks ``campaign``. Lines are grouped by person, each person's in time
      order.

    Args:
        out_dir: Directory to write into.
        contacts: Number of contact rows.
        seed: Random seed; the same arguments give byte-identical files.
        years: Length of the interaction history, in years before ``as_of``.
        as_of: The "now" of the data set (default :data:`DEFAULT_AS_OF`, so runs
            are reproducible; pass ``datetime.now(UTC)`` for fresh data). A naive
            datetime is taken as UTC.
        duplicate_rate: Share of rows that are duplicates, in
            ``[0, MAX_DUPLICATE_RATE]``.
        with_interactions: Write ``interactions.jsonl``.
        with_companies: Write ``companies.csv``. The contacts are the same either way.
        stray_rate: Of the duplicates whose mistakes leave them none of the
            person's own contact points (their first email, phone or postal
            address, even misspelt), the share kept that way; each of the others
            gets one back, as its source would record it (a phone number for a
            till, the email otherwise). Such strays share at most a name and a
            city with the person's other records, and no matcher can link them
            without labels. At 1.0 (the default) the duplicates are left as the
            error model makes them: about one in eight is a stray.

    Returns:
        A :class:`SampleInfo` with the paths and counts.

    Raises:
        ValueError: An argument is out of range.
    """
    when = _check(contacts, duplicate_rate, as_of, stray_rate)
    if not years > 0:
        raise ValueError("years must be positive")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    gen = _ContactGenerator(contacts, seed, duplicate_rate, when, stray_rate)
    contacts_path = out_dir / "contacts.csv"
    truth_path = out_dir / "truth.csv"
    companies_path = out_dir / "companies.csv" if with_companies else None
    interactions_path = out_dir / "interactions.jsonl" if with_interactions else None
    interactions = 0
    with (
        contacts_path.open("w", newline="", encoding="utf-8") as cf,
        truth_path.open("w", newline="", encoding="utf-8") as tf,
    ):
        cw = csv.writer(cf, lineterminator="\n")
        cw.writerow(CONTACT_HEADER)
        tf.write(",".join(TRUTH_HEADER) + "\n")
        jf = interactions_path.open("wb") if interactions_path is not None else None
        try:
            writer = None
            if jf is not None:
                writer = _InteractionWriter(jf.write, seed, when, years)
                gen.on_complete = writer.write
            rows: list[list[str]] = []
            truth: list[str] = []
            for row, entity in gen.rows():
                rows.append(row)
                truth.append(f"{row[0]},{entity}\n")
                if len(rows) >= 4096:
                    cw.writerows(rows)
                    tf.write("".join(truth))
                    rows.clear()
                    truth.clear()
            cw.writerows(rows)
            tf.write("".join(truth))
            if writer is not None:
                interactions = writer.count
        finally:
            if jf is not None:
                jf.close()
    companies = 0
    if companies_path is not None:
        with companies_path.open("w", newline="", encoding="utf-8") as f:
            w = csv.writer(f, lineterminator="\n")
            w.writerow(COMPANY_HEADER)
            names = {code: m.c.name for code, m in ((m.c.code, m) for m in gen.models)}
            for co in gen.companies:
                w.writerow([co.name, co.domain, co.industry, co.employees, names[co.country]])
            companies = len(gen.companies)
    return SampleInfo(
        out_dir=out_dir,
        contacts_path=contacts_path,
        truth_path=truth_path,
        companies_path=companies_path,
        interactions_path=interactions_path,
        contacts=contacts,
        entities=gen.entities,
        duplicate_rows=gen.duplicate_rows,
        companies=companies,
        interactions=interactions,
    )

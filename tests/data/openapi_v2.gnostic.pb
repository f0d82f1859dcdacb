
2.0

watchcache0.0.0B”Ü∆
*/apis/wardle.example.com/v1alpha1/fischersó⁄

wardle.example.com_v1alpha1%list or watch objects of kind Fischer*listFischer2application/json2application/json;stream=watchBE
CA?queryAsk for BOOKMARK events."allowWatchBookmarks2booleanBL
JHFquery+The token of the next page of a paged list."continue2stringBj
hfdqueryDA selector to restrict the list of returned objects by their fields."fieldSelector2stringBj
hfdqueryDA selector to restrict the list of returned objects by their labels."labelSelector2stringBD
B@>query%The most items to return in one page."limit2integerB|
zxvqueryTUnset: the most recent state (consistent); 0: any cached state; N: not older than N."resourceVersion2stringBj
hfdquery=How resourceVersion applies to a list: NotOlderThan or Exact."resourceVersionMatch2stringBy
wusqueryNBegin the watch with the current objects, then an initial-events-end bookmark."sendInitialEvents2booleanBN
LJHquery&End the watch after this many seconds."timeoutSeconds2integerBD
B@>query%Watch for changes instead of listing."watch2booleanJü
H
200A
?
OK9
7
5#/definitions/com.example.wardle.v1alpha1.FischerList
S
defaultH
F
Error=
;
9#/definitions/io.k8s.apimachinery.pkg.apis.meta.v1.StatusRhttpsj
x-kubernetes-actionlist
j_
x-kubernetes-group-version-kind<:group: wardle.example.com
kind: Fischer
version: v1alpha1
"∑
wardle.example.com_v1alpha1create a Fischer*createFischer2application/json:application/jsonBﬁ
€ÿ’query≤How the server treats unknown or duplicate fields in the request body: Ignore, Warn or Strict. Its presence on PATCH tells kubectl that the server validates, so kubectl does not."fieldValidation2stringBG
E
Cbodybody *3
1#/definitions/com.example.wardle.v1alpha1.FischerJ†
I
201B
@
Created5
3
1#/definitions/com.example.wardle.v1alpha1.Fischer
S
defaultH
F
Error=
;
9#/definitions/io.k8s.apimachinery.pkg.apis.meta.v1.StatusRhttpsj
x-kubernetes-actionpost
j_
x-kubernetes-group-version-kind<:group: wardle.example.com
kind: Fischer
version: v1alpha1
ù
1/apis/wardle.example.com/v1alpha1/fischers/{name}Á˝
wardle.example.com_v1alpha1read the specified Fischer*readFischer2application/jsonJõ
D
200=
;
OK5
3
1#/definitions/com.example.wardle.v1alpha1.Fischer
S
defaultH
F
Error=
;
9#/definitions/io.k8s.apimachinery.pkg.apis.meta.v1.StatusRhttpsj
x-kubernetes-actionget
j_
x-kubernetes-group-version-kind<:group: wardle.example.com
kind: Fischer
version: v1alpha1
ø
wardle.example.com_v1alpha1replace the specified Fischer*replaceFischer2application/json:application/jsonBﬁ
€ÿ’query≤How the server treats unknown or duplicate fields in the request body: Ignore, Warn or Strict. Its presence on PATCH tells kubectl that the server validates, so kubectl does not."fieldValidation2stringBG
E
Cbodybody *3
1#/definitions/com.example.wardle.v1alpha1.FischerJõ
D
200=
;
OK5
3
1#/definitions/com.example.wardle.v1alpha1.Fischer
S
defaultH
F
Error=
;
9#/definitions/io.k8s.apimachinery.pkg.apis.meta.v1.StatusRhttpsj
x-kubernetes-actionput
j_
x-kubernetes-group-version-kind<:group: wardle.example.com
kind: Fischer
version: v1alpha1
*Ù
wardle.example.com_v1alpha1delete a Fischer*deleteFischer2application/json:application/jsonBT
R
Pbodybody*B
@#/definitions/io.k8s.apimachinery.pkg.apis.meta.v1.DeleteOptionsJØ
X
200Q
O
OK: the deleted object5
3
1#/definitions/com.example.wardle.v1alpha1.Fischer
S
defaultH
F
Error=
;
9#/definitions/io.k8s.apimachinery.pkg.apis.meta.v1.StatusRhttpsj 
x-kubernetes-action	delete
j_
x-kubernetes-group-version-kind<:group: wardle.example.com
kind: Fischer
version: v1alpha1
B¯
wardle.example.com_v1alpha1&partially update the specified Fischer*patchFischer2application/json:application/json-patch+json:application/merge-patch+jsonBﬁ
€ÿ’query≤How the server treats unknown or duplicate fields in the request body: Ignore, Warn or Strict. Its presence on PATCH tells kubectl that the server validates, so kubectl does not."fieldValidation2stringBN
L
Jbodybody *:
8#/definitions/io.k8s.apimachinery.pkg.apis.meta.v1.PatchJõ
D
200=
;
OK5
3
1#/definitions/com.example.wardle.v1alpha1.Fischer
S
defaultH
F
Error=
;
9#/definitions/io.k8s.apimachinery.pkg.apis.meta.v1.StatusRhttpsj
x-kubernetes-actionpatch
j_
x-kubernetes-group-version-kind<:group: wardle.example.com
kind: Fischer
version: v1alpha1
J1
/-"+pathname of the Fischer"name*stringÆ
*/apis/wardle.example.com/v1alpha1/flundersˇ
¸

wardle.example.com_v1alpha17list or watch objects of kind Flunder in all namespaces*listFlunderForAllNamespaces2application/json2application/json;stream=watchBE
CA?queryAsk for BOOKMARK events."allowWatchBookmarks2booleanBL
JHFquery+The token of the next page of a paged list."continue2stringBj
hfdqueryDA selector to restrict the list of returned objects by their fields."fieldSelector2stringBj
hfdqueryDA selector to restrict the list of returned objects by their labels."labelSelector2stringBD
B@>query%The most items to return in one page."limit2integerB|
zxvqueryTUnset: the most recent state (consistent); 0: any cached state; N: not older than N."resourceVersion2stringBj
hfdquery=How resourceVersion applies to a list: NotOlderThan or Exact."resourceVersionMatch2stringBy
wusqueryNBegin the watch with the current objects, then an initial-events-end bookmark."sendInitialEvents2booleanBN
LJHquery&End the watch after this many seconds."timeoutSeconds2integerBD
B@>query%Watch for changes instead of listing."watch2booleanJü
H
200A
?
OK9
7
5#/definitions/com.example.wardle.v1alpha1.FlunderList
S
defaultH
F
Error=
;
9#/definitions/io.k8s.apimachinery.pkg.apis.meta.v1.StatusRhttpsj
x-kubernetes-actionlist
j_
x-kubernetes-group-version-kind<:group: wardle.example.com
kind: Flunder
version: v1alpha1
–
A/apis/wardle.example.com/v1alpha1/namespaces/{namespace}/flundersä‰

wardle.example.com_v1alpha1%list or watch objects of kind Flunder*listNamespacedFlunder2application/json2application/json;stream=watchBE
CA?queryAsk for BOOKMARK events."allowWatchBookmarks2booleanBL
JHFquery+The token of the next page of a paged list."continue2stringBj
hfdqueryDA selector to restrict the list of returned objects by their fields."fieldSelector2stringBj
hfdqueryDA selector to restrict the list of returned objects by their labels."labelSelector2stringBD
B@>query%The most items to return in one page."limit2integerB|
zxvqueryTUnset: the most recent state (consistent); 0: any cached state; N: not older than N."resourceVersion2stringBj
hfdquery=How resourceVersion applies to a list: NotOlderThan or Exact."resourceVersionMatch2stringBy
wusqueryNBegin the watch with the current objects, then an initial-events-end bookmark."sendInitialEvents2booleanBN
LJHquery&End the watch after this many seconds."timeoutSeconds2integerBD
B@>query%Watch for changes instead of listing."watch2booleanJü
H
200A
?
OK9
7
5#/definitions/com.example.wardle.v1alpha1.FlunderList
S
defaultH
F
Error=
;
9#/definitions/io.k8s.apimachinery.pkg.apis.meta.v1.StatusRhttpsj
x-kubernetes-actionlist
j_
x-kubernetes-group-version-kind<:group: wardle.example.com
kind: Flunder
version: v1alpha1
"¡
wardle.example.com_v1alpha1create a Flunder*createNamespacedFlunder2application/json:application/jsonBﬁ
€ÿ’query≤How the server treats unknown or duplicate fields in the request body: Ignore, Warn or Strict. Its presence on PATCH tells kubectl that the server validates, so kubectl does not."fieldValidation2stringBG
E
Cbodybody *3
1#/definitions/com.example.wardle.v1alpha1.FlunderJ†
I
201B
@
Created5
3
1#/definitions/com.example.wardle.v1alpha1.Flunder
S
defaultH
F
Error=
;
9#/definitions/io.k8s.apimachinery.pkg.apis.meta.v1.StatusRhttpsj
x-kubernetes-actionpost
j_
x-kubernetes-group-version-kind<:group: wardle.example.com
kind: Flunder
version: v1alpha1
J]
[Y"Wpath:object name and auth scope, such as for teams and projects"	namespace*stringª
H/apis/wardle.example.com/v1alpha1/namespaces/{namespace}/flunders/{name}Óá
wardle.example.com_v1alpha1read the specified Flunder*readNamespacedFlunder2application/jsonJõ
D
200=
;
OK5
3
1#/definitions/com.example.wardle.v1alpha1.Flunder
S
defaultH
F
Error=
;
9#/definitions/io.k8s.apimachinery.pkg.apis.meta.v1.StatusRhttpsj
x-kubernetes-actionget
j_
x-kubernetes-group-version-kind<:group: wardle.example.com
kind: Flunder
version: v1alpha1
…
wardle.example.com_v1alpha1replace the specified Flunder*replaceNamespacedFlunder2application/json:application/jsonBﬁ
€ÿ’query≤How the server treats unknown or duplicate fields in the request body: Ignore, Warn or Strict. Its presence on PATCH tells kubectl that the server validates, so kubectl does not."fieldValidation2stringBG
E
Cbodybody *3
1#/definitions/com.example.wardle.v1alpha1.FlunderJõ
D
200=
;
OK5
3
1#/definitions/com.example.wardle.v1alpha1.Flunder
S
defaultH
F
Error=
;
9#/definitions/io.k8s.apimachinery.pkg.apis.meta.v1.StatusRhttpsj
x-kubernetes-actionput
j_
x-kubernetes-group-version-kind<:group: wardle.example.com
kind: Flunder
version: v1alpha1
*˛
wardle.example.com_v1alpha1delete a Flunder*deleteNamespacedFlunder2application/json:application/jsonBT
R
Pbodybody*B
@#/definitions/io.k8s.apimachinery.pkg.apis.meta.v1.DeleteOptionsJØ
X
200Q
O
OK: the deleted object5
3
1#/definitions/com.example.wardle.v1alpha1.Flunder
S
defaultH
F
Error=
;
9#/definitions/io.k8s.apimachinery.pkg.apis.meta.v1.StatusRhttpsj 
x-kubernetes-action	delete
j_
x-kubernetes-group-version-kind<:group: wardle.example.com
kind: Flunder
version: v1alpha1
BÇ
wardle.example.com_v1alpha1&partially update the specified Flunder*patchNamespacedFlunder2application/json:application/json-patch+json:application/merge-patch+jsonBﬁ
€ÿ’query≤How the server treats unknown or duplicate fields in the request body: Ignore, Warn or Strict. Its presence on PATCH tells kubectl that the server validates, so kubectl does not."fieldValidation2stringBN
L
Jbodybody *:
8#/definitions/io.k8s.apimachinery.pkg.apis.meta.v1.PatchJõ
D
200=
;
OK5
3
1#/definitions/com.example.wardle.v1alpha1.Flunder
S
defaultH
F
Error=
;
9#/definitions/io.k8s.apimachinery.pkg.apis.meta.v1.StatusRhttpsj
x-kubernetes-actionpatch
j_
x-kubernetes-group-version-kind<:group: wardle.example.com
kind: Flunder
version: v1alpha1
J1
/-"+pathname of the Flunder"name*stringJ]
[Y"Wpath:object name and auth scope, such as for teams and projects"	namespace*string™
)/apis/wardle.example.com/v1beta1/flunders¸
˘

wardle.example.com_v1beta17list or watch objects of kind Flunder in all namespaces*listFlunderForAllNamespaces2application/json2application/json;stream=watchBE
CA?queryAsk for BOOKMARK events."allowWatchBookmarks2booleanBL
JHFquery+The token of the next page of a paged list."continue2stringBj
hfdqueryDA selector to restrict the list of returned objects by their fields."fieldSelector2stringBj
hfdqueryDA selector to restrict the list of returned objects by their labels."labelSelector2stringBD
B@>query%The most items to return in one page."limit2integerB|
zxvqueryTUnset: the most recent state (consistent); 0: any cached state; N: not older than N."resourceVersion2stringBj
hfdquery=How resourceVersion applies to a list: NotOlderThan or Exact."resourceVersionMatch2stringBy
wusqueryNBegin the watch with the current objects, then an initial-events-end bookmark."sendInitialEvents2booleanBN
LJHquery&End the watch after this many seconds."timeoutSeconds2integerBD
B@>query%Watch for changes instead of listing."watch2booleanJû
G
200@
>
OK8
6
4#/definitions/com.example.wardle.v1beta1.FlunderList
S
defaultH
F
Error=
;
9#/definitions/io.k8s.apimachinery.pkg.apis.meta.v1.StatusRhttpsj
x-kubernetes-actionlist
j^
x-kubernetes-group-version-kind;9group: wardle.example.com
kind: Flunder
version: v1beta1
»
@/apis/wardle.example.com/v1beta1/namespaces/{namespace}/flundersÉ·

wardle.example.com_v1beta1%list or watch objects of kind Flunder*listNamespacedFlunder2application/json2application/json;stream=watchBE
CA?queryAsk for BOOKMARK events."allowWatchBookmarks2booleanBL
JHFquery+The token of the next page of a paged list."continue2stringBj
hfdqueryDA selector to restrict the list of returned objects by their fields."fieldSelector2stringBj
hfdqueryDA selector to restrict the list of returned objects by their labels."labelSelector2stringBD
B@>query%The most items to return in one page."limit2integerB|
zxvqueryTUnset: the most recent state (consistent); 0: any cached state; N: not older than N."resourceVersion2stringBj
hfdquery=How resourceVersion applies to a list: NotOlderThan or Exact."resourceVersionMatch2stringBy
wusqueryNBegin the watch with the current objects, then an initial-events-end bookmark."sendInitialEvents2booleanBN
LJHquery&End the watch after this many seconds."timeoutSeconds2integerBD
B@>query%Watch for changes instead of listing."watch2booleanJû
G
200@
>
OK8
6
4#/definitions/com.example.wardle.v1beta1.FlunderList
S
defaultH
F
Error=
;
9#/definitions/io.k8s.apimachinery.pkg.apis.meta.v1.StatusRhttpsj
x-kubernetes-actionlist
j^
x-kubernetes-group-version-kind;9group: wardle.example.com
kind: Flunder
version: v1beta1
"Ω
wardle.example.com_v1beta1create a Flunder*createNamespacedFlunder2application/json:application/jsonBﬁ
€ÿ’query≤How the server treats unknown or duplicate fields in the request body: Ignore, Warn or Strict. Its presence on PATCH tells kubectl that the server validates, so kubectl does not."fieldValidation2stringBF
D
Bbodybody *2
0#/definitions/com.example.wardle.v1beta1.FlunderJü
H
201A
?
Created4
2
0#/definitions/com.example.wardle.v1beta1.Flunder
S
defaultH
F
Error=
;
9#/definitions/io.k8s.apimachinery.pkg.apis.meta.v1.StatusRhttpsj
x-kubernetes-actionpost
j^
x-kubernetes-group-version-kind;9group: wardle.example.com
kind: Flunder
version: v1beta1
J]
[Y"Wpath:object name and auth scope, such as for teams and projects"	namespace*string≠
G/apis/wardle.example.com/v1beta1/namespaces/{namespace}/flunders/{name}·Ñ
wardle.example.com_v1beta1read the specified Flunder*readNamespacedFlunder2application/jsonJö
C
200<
:
OK4
2
0#/definitions/com.example.wardle.v1beta1.Flunder
S
defaultH
F
Error=
;
9#/definitions/io.k8s.apimachinery.pkg.apis.meta.v1.StatusRhttpsj
x-kubernetes-actionget
j^
x-kubernetes-group-version-kind;9group: wardle.example.com
kind: Flunder
version: v1beta1
≈
wardle.example.com_v1beta1replace the specified Flunder*replaceNamespacedFlunder2application/json:application/jsonBﬁ
€ÿ’query≤How the server treats unknown or duplicate fields in the request body: Ignore, Warn or Strict. Its presence on PATCH tells kubectl that the server validates, so kubectl does not."fieldValidation2stringBF
D
Bbodybody *2
0#/definitions/com.example.wardle.v1beta1.FlunderJö
C
200<
:
OK4
2
0#/definitions/com.example.wardle.v1beta1.Flunder
S
defaultH
F
Error=
;
9#/definitions/io.k8s.apimachinery.pkg.apis.meta.v1.StatusRhttpsj
x-kubernetes-actionput
j^
x-kubernetes-group-version-kind;9group: wardle.example.com
kind: Flunder
version: v1beta1
*˚
wardle.example.com_v1beta1delete a Flunder*deleteNamespacedFlunder2application/json:application/jsonBT
R
Pbodybody*B
@#/definitions/io.k8s.apimachinery.pkg.apis.meta.v1.DeleteOptionsJÆ
W
200P
N
OK: the deleted object4
2
0#/definitions/com.example.wardle.v1beta1.Flunder
S
defaultH
F
Error=
;
9#/definitions/io.k8s.apimachinery.pkg.apis.meta.v1.StatusRhttpsj 
x-kubernetes-action	delete
j^
x-kubernetes-group-version-kind;9group: wardle.example.com
kind: Flunder
version: v1beta1
Bˇ
wardle.example.com_v1beta1&partially update the specified Flunder*patchNamespacedFlunder2application/json:application/json-patch+json:application/merge-patch+jsonBﬁ
€ÿ’query≤How the server treats unknown or duplicate fields in the request body: Ignore, Warn or Strict. Its presence on PATCH tells kubectl that the server validates, so kubectl does not."fieldValidation2stringBN
L
Jbodybody *:
8#/definitions/io.k8s.apimachinery.pkg.apis.meta.v1.PatchJö
C
200<
:
OK4
2
0#/definitions/com.example.wardle.v1beta1.Flunder
S
defaultH
F
Error=
;
9#/definitions/io.k8s.apimachinery.pkg.apis.meta.v1.StatusRhttpsj
x-kubernetes-actionpatch
j^
x-kubernetes-group-version-kind;9group: wardle.example.com
kind: Flunder
version: v1beta1
J1
/-"+pathname of the Flunder"name*stringJ]
[Y"Wpath:object name and auth scope, such as for teams and projects"	namespace*stringJÁ0
ö
#com.example.wardle.v1alpha1.Fischers≤
object˙e
x-kubernetes-group-version-kindB@- group: wardle.example.com
  kind: Fischer
  version: v1alpha1

Ü
'com.example.wardle.v1alpha1.FischerList⁄" FischerList is a list of Fischeröitems≤
object µ
?

apiVersion1"$The versioned schema of this object.≤
string
K
itemsB≤
array∫5
3
1#/definitions/com.example.wardle.v1alpha1.Fischer
>
kind6")The REST resource this object represents.≤
string
e
metadataY"Standard list metadata.¬=
;#/definitions/io.k8s.apimachinery.pkg.apis.meta.v1.ListMeta˙i
x-kubernetes-group-version-kindFD- group: wardle.example.com
  kind: FischerList
  version: v1alpha1

ö
#com.example.wardle.v1alpha1.Flunders≤
object˙e
x-kubernetes-group-version-kindB@- group: wardle.example.com
  kind: Flunder
  version: v1alpha1

Ü
'com.example.wardle.v1alpha1.FlunderList⁄" FlunderList is a list of Flunderöitems≤
object µ
?

apiVersion1"$The versioned schema of this object.≤
string
K
itemsB≤
array∫5
3
1#/definitions/com.example.wardle.v1alpha1.Flunder
>
kind6")The REST resource this object represents.≤
string
e
metadataY"Standard list metadata.¬=
;#/definitions/io.k8s.apimachinery.pkg.apis.meta.v1.ListMeta˙i
x-kubernetes-group-version-kindFD- group: wardle.example.com
  kind: FlunderList
  version: v1alpha1

ò
"com.example.wardle.v1beta1.Flunderr≤
object˙d
x-kubernetes-group-version-kindA?- group: wardle.example.com
  kind: Flunder
  version: v1beta1

É
&com.example.wardle.v1beta1.FlunderListÿ" FlunderList is a list of Flunderöitems≤
object ¥
?

apiVersion1"$The versioned schema of this object.≤
string
J
itemsA≤
array∫4
2
0#/definitions/com.example.wardle.v1beta1.Flunder
>
kind6")The REST resource this object represents.≤
string
e
metadataY"Standard list metadata.¬=
;#/definitions/io.k8s.apimachinery.pkg.apis.meta.v1.ListMeta˙h
x-kubernetes-group-version-kindEC- group: wardle.example.com
  kind: FlunderList
  version: v1beta1

∏
2io.k8s.apimachinery.pkg.apis.meta.v1.DeleteOptionsÅ≤
object ö


apiVersion≤
string
$
dryRun≤
array∫
≤
string
)
gracePeriodSecondsint64≤	
integer

kind≤
string
 
orphanDependents≤	
boolean
S
preconditionsB
@#/definitions/io.k8s.apimachinery.pkg.apis.meta.v1.Preconditions
 
propagationPolicy≤
string˙U
x-kubernetes-group-version-kind20- group: ""
  kind: DeleteOptions
  version: v1

<
-io.k8s.apimachinery.pkg.apis.meta.v1.FieldsV1≤
object
Ã
-io.k8s.apimachinery.pkg.apis.meta.v1.ListMetaö"Metadata of a list.≤
object ˆ
>
continue2"%Token to fetch the next page, if any.≤
string
Z
remainingItemCountDint64"/How many items the next pages hold, when known.≤	
integer
?
resourceVersion,"The state the list was read at.≤
string

selfLink≤
string
›
7io.k8s.apimachinery.pkg.apis.meta.v1.ManagedFieldsEntry°≤
object í


apiVersion≤
string


fieldsType≤
string
I
fieldsV1=
;#/definitions/io.k8s.apimachinery.pkg.apis.meta.v1.FieldsV1

manager≤
string

	operation≤
string

subresource≤
string
A
time9
7#/definitions/io.k8s.apimachinery.pkg.apis.meta.v1.Time
’	
/io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta°	"0Metadata that all persisted resources must have.≤
object ‡
]
annotationsN"1Unstructured key value map set by external tools.™
≤
string≤
object
Ç
creationTimestampm"/When the object was created; set by the server.¬9
7#/definitions/io.k8s.apimachinery.pkg.apis.meta.v1.Time
1
deletionGracePeriodSecondsint64≤	
integer
N
deletionTimestamp9
7#/definitions/io.k8s.apimachinery.pkg.apis.meta.v1.Time
(

finalizers≤
array∫
≤
string
V
generateNameF"9Prefix of a name the server generates when name is empty.≤
string
!

generationint64≤	
integer
Z
labelsP"3Map of string keys and values to select objects by.™
≤
string≤
object
g
managedFieldsV≤
array∫I
G
E#/definitions/io.k8s.apimachinery.pkg.apis.meta.v1.ManagedFieldsEntry
/
name'"Unique within a namespace.≤
string
?
	namespace2"%The namespace of a namespaced object.≤
string
e
ownerReferencesR≤
array∫E
C
A#/definitions/io.k8s.apimachinery.pkg.apis.meta.v1.OwnerReference
Y
resourceVersionF"9Opaque version of the object, for optimistic concurrency.≤
string

selfLink≤
string
@
uid9",Unique in time and space; set by the server.≤
string
¶
3io.k8s.apimachinery.pkg.apis.meta.v1.OwnerReferenceÓö
apiVersionökindönameöuid≤
object ô


apiVersion≤
string
"
blockOwnerDeletion≤	
boolean


controller≤	
boolean

kind≤
string

name≤
string

uid≤
string˙"
x-kubernetes-map-type	atomic

m
*io.k8s.apimachinery.pkg.apis.meta.v1.Patch?"2A JSON merge patch (object) or JSON patch (array).≤
object
x
2io.k8s.apimachinery.pkg.apis.meta.v1.PreconditionsB≤
object 4

resourceVersion≤
string

uid≤
string
Ω
+io.k8s.apimachinery.pkg.apis.meta.v1.Statusç≤
object ≠


apiVersion≤
string

codeint32≤	
integer
M
detailsB
@#/definitions/io.k8s.apimachinery.pkg.apis.meta.v1.StatusDetails

kind≤
string

message≤
string
I
metadata=
;#/definitions/io.k8s.apimachinery.pkg.apis.meta.v1.ListMeta

reason≤
string

status≤
string˙N
x-kubernetes-group-version-kind+)- group: ""
  kind: Status
  version: v1

á
0io.k8s.apimachinery.pkg.apis.meta.v1.StatusCauseS≤
object E

field≤
string

message≤
string

reason≤
string
ü
2io.k8s.apimachinery.pkg.apis.meta.v1.StatusDetailsË≤
object Ÿ
Y
causesO≤
array∫B
@
>#/definitions/io.k8s.apimachinery.pkg.apis.meta.v1.StatusCause

group≤
string

kind≤
string

name≤
string
(
retryAfterSecondsint32≤	
integer

uid≤
string
C
)io.k8s.apimachinery.pkg.apis.meta.v1.Time	date-time≤
string
¥
/io.k8s.apimachinery.pkg.apis.meta.v1.WatchEventÄötypeöobject≤
object å
G
object=≤
object˙/
$x-kubernetes-preserve-unknown-fieldstrue

A
type9",ADDED, MODIFIED, DELETED, BOOKMARK or ERROR.≤
string˙R
x-kubernetes-group-version-kind/-- group: ""
  kind: WatchEvent
  version: v1
